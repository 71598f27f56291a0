import { UnrecoverableError, Worker } from 'bullmq';
import { QueueName } from '@dinoq/jobs';
import { checkpointCommitKey, commitCheckpoint } from '@dinoq/storage';
import { AUTH, TINY_RUN, redisConnection, seedDataset, startTestApi, type TestApi } from './api-fixture';

/*
 * What went wrong must be visible through the API: an import job that failed, and a checkpoint
 * whose COMMITTED record is damaged.
 */

let t: TestApi;

beforeAll(async () => {
  t = await startTestApi();
});
afterAll(() => t.close());

/** Fails the next import job the way the worker fails one that can never succeed. */
async function failNextImport(reason: string): Promise<void> {
  const worker = new Worker(
    QueueName.Import,
    async () => {
      throw new UnrecoverableError(reason);
    },
    { connection: redisConnection, prefix: t.prefix },
  );
  try {
    await new Promise((resolve) => worker.once('failed', resolve));
  } finally {
    await worker.close();
  }
}

describe('a failed import', () => {
  it('is shown, with its reason, where the dataset would be', async () => {
    const body = { name: 'typo', source: { kind: 'image-folder', prefix: 'uploads/tpyo' } };
    await t.http.post('/datasets/import').set(AUTH).send(body).expect(202);

    const queued = await t.http.get('/datasets/typo').set(AUTH).expect(404);
    expect(queued.body.message).toBe(
      'dataset "typo" does not exist: it is being imported (job import-typo is waiting)',
    );
    expect(queued.body.import).toMatchObject({ jobId: 'import-typo', state: 'waiting', failedReason: null });

    const reason = 'import typo: nothing under s3 prefix "uploads/tpyo/"';
    await failNextImport(reason);

    const missing = await t.http.get('/datasets/typo').set(AUTH).expect(404);
    expect(missing.body).toMatchObject({
      field: 'name',
      message: `dataset "typo" does not exist: its import job import-typo failed: ${reason}`,
      import: { name: 'typo', jobId: 'import-typo', state: 'failed', failedReason: reason },
    });
    const job = await t.http.get('/datasets/typo/import').set(AUTH).expect(200);
    expect(job.body).toMatchObject({
      name: 'typo',
      state: 'failed',
      source: { kind: 'image-folder', prefix: 'uploads/tpyo' },
      failedReason: reason,
    });
    expect(job.body.finishedAt).toEqual(expect.any(String));

    // A corrected request queues the import again under the same id.
    await t.http.post('/datasets/import').set(AUTH).send(body).expect(202);
    expect((await t.http.get('/datasets/typo/import').set(AUTH).expect(200)).body.state).toBe('waiting');
  });

  it('leaves a name that was never imported a plain 404', async () => {
    const res = await t.http.get('/datasets/never').set(AUTH).expect(404);
    expect(res.body).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: 'dataset "never" does not exist',
      field: 'name',
    });
    const job = await t.http.get('/datasets/never/import').set(AUTH).expect(404);
    expect(job.body).toMatchObject({ message: 'no import job for dataset "never"', field: 'name' });
  });
});

describe('an unreadable COMMITTED record', () => {
  it('is named in the artifact listing, and the readable checkpoints are still listed', async () => {
    await seedDataset(t.store, 'fmnist');
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-damaged', device: 'cpu' })
      .expect(201);
    await commitCheckpoint(t.store, 'run-damaged', 50, { 'state.json': new TextEncoder().encode('{}') });
    await t.store.putBytes(
      checkpointCommitKey('run-damaged', 100),
      new TextEncoder().encode('\u0000garbage'),
    );
    await t.store.putJson(checkpointCommitKey('run-damaged', 150), { format: 'something else' });

    const res = await t.http.get('/runs/run-damaged/artifacts').set(AUTH).expect(200);
    expect(res.body.checkpoints.map((c: { step: number }) => c.step)).toEqual([50]);
    expect(res.body.unreadableCheckpoints).toEqual([
      { step: 100, key: 'checkpoints/000000100/COMMITTED', reason: expect.stringMatching(/^not valid JSON/) },
      {
        step: 150,
        key: 'checkpoints/000000150/COMMITTED',
        reason: 'not a valid commit record: format is "something else"',
      },
    ]);
  });
});
