import { PutObjectCommand } from '@aws-sdk/client-s3';
import { QueueName, RunRepository, runRecordSchema } from '@dinoq/jobs';
import { runRecordKey, runSpecKey } from '@dinoq/storage';
import { AUTH, TINY_RUN, seedDataset, startTestApi, type TestApi } from './api-fixture';

/*
 * Many writers at once: API replicas answering the same request twice, a user cancelling while a
 * worker updates the record, and a record broken outside the API.
 */

let t: TestApi;

beforeAll(async () => {
  t = await startTestApi();
  await seedDataset(t.store, 'fmnist');
});
afterAll(() => t.close());

const record = async (runId: string) => runRecordSchema.parse(await t.store.getJson(runKey(runId)));
const runKey = (runId: string) => runRecordKey(runId);

async function liveJobIds(): Promise<string[]> {
  return (await t.queue(QueueName.TrainCpu).getJobs(['waiting', 'active', 'delayed', 'prioritized']))
    .map((job) => String(job.id))
    .sort();
}

async function writeRaw(key: string, body: string): Promise<void> {
  await t.store.client.send(new PutObjectCommand({ Bucket: t.store.bucket, Key: key, Body: body }));
}

describe('concurrent requests', () => {
  it('creates a run once when ten requests with one id arrive together; the others get 409', async () => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        t.http
          .post('/runs')
          .set(AUTH)
          .send({ ...TINY_RUN, runId: 'race-create', device: 'cpu' }),
      ),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([201, ...Array<number>(9).fill(409)]);
    const winner = answers.find((answer) => answer.status === 201)!;
    const stored = await record('race-create');
    expect((stored.config as { train: { seed: number } }).train.seed).toBe(winner.body.config.train.seed);
    expect(await liveJobIds()).toEqual(['race-create-g0-shard-0']);
  });

  it('resumes a run once when ten resumes arrive together; the others get 409', async () => {
    await t.http.post('/runs/race-create/cancel').set(AUTH).expect(200);
    expect((await record('race-create')).status).toBe('cancelled');
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => t.http.post('/runs/race-create/resume').set(AUTH)),
    );
    expect(answers.map((answer) => answer.status).sort()).toEqual([202, ...Array<number>(9).fill(409)]);
    expect(await record('race-create')).toMatchObject({ status: 'queued', generation: 1 });
    expect(await liveJobIds()).toEqual(['race-create-g1-shard-0']);
  });

  it('keeps both a cancel request and a worker update that race each other', async () => {
    const worker = new RunRepository(t.store);
    for (let round = 0; round < 5; round += 1) {
      const runId = `race-cancel-${round}`;
      await t.http
        .post('/runs')
        .set(AUTH)
        .send({ ...TINY_RUN, runId, device: 'cpu' })
        .expect(201);
      await worker.update(runId, () => ({ status: 'running' }));
      const [cancel] = await Promise.all([
        t.http.post(`/runs/${runId}/cancel`).set(AUTH),
        worker.update(runId, (run) => ({
          latestMetrics: { step: 7, loss: 9.5 },
          workerId: `w-${run.generation}`,
        })),
        worker.update(runId, () => ({ backend: 'wasm' })),
      ]);
      expect(cancel.status).toBe(200);
      expect(await record(runId)).toMatchObject({
        cancelRequested: true,
        latestMetrics: { step: 7, loss: 9.5 },
        workerId: 'w-0',
        backend: 'wasm',
      });
    }
  });
});

describe('an unreadable run record', () => {
  beforeAll(async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'torn', device: 'cpu' })
      .expect(201);
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'whole', device: 'cpu' })
      .expect(201);
  });

  it('is answered with 422 naming its key, and hides no other run', async () => {
    const text = JSON.stringify(await record('torn'), null, 2);
    await writeRaw(runKey('torn'), `${text}\n\u0000\u0013 stray bytes`);
    const answer = await t.http.get('/runs/torn').set(AUTH).expect(422);
    expect(answer.body).toMatchObject({ statusCode: 422, key: 'runs/torn/run.json' });
    expect(answer.body.message).toMatch(/POST \/runs\/torn\/repair/);
    await t.http.post('/runs/torn/resume').set(AUTH).expect(422);
    const listed = await t.http.get('/runs').set(AUTH).expect(200);
    expect(JSON.stringify(listed.body)).toContain('"whole"');
  });

  it('is rebuilt from spec.json as cancelled by a cancel, and as failed by a repair, then resumes', async () => {
    const cancelled = await t.http.post('/runs/torn/cancel').set(AUTH).expect(200);
    expect(cancelled.body).toMatchObject({ runId: 'torn', status: 'cancelled', repaired: true });

    await writeRaw(runKey('torn'), '{"runId": "torn", "status": 12}');
    const repaired = await t.http.post('/runs/torn/repair').set(AUTH).expect(200);
    expect(repaired.body).toMatchObject({ runId: 'torn', status: 'failed', repaired: true });
    expect(repaired.body.error).toMatch(/was unreadable and was rebuilt from runs\/torn\/spec\.json/);
    const again = await t.http.post('/runs/torn/repair').set(AUTH).expect(200);
    expect(again.body.repaired).toBe(false);

    const resumed = await t.http.post('/runs/torn/resume').set(AUTH).expect(202);
    expect(resumed.body.job.id).toBe(`torn-g${repaired.body.generation + 1}-shard-0`);
    const spec = await t.store.getJson<{ config: unknown }>(runSpecKey('torn'));
    expect((await record('torn')).config).toEqual(spec!.config);
  });

  it('cannot be rebuilt without a spec: 422 says so', async () => {
    await t.store.delete(runSpecKey('whole'));
    await writeRaw(runKey('whole'), 'not json');
    const answer = await t.http.post('/runs/whole/repair').set(AUTH).expect(422);
    expect(answer.body.message).toMatch(/runs\/whole\/spec\.json is missing/);
  });
});
