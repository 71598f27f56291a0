import { runRecordSchema, runSummarySchema, type RunStatus } from '@dinoq/jobs';
import { runRecordKey } from '@dinoq/storage';
import { AUTH, TINY_RUN, seedDataset, startTestApi, type TestApi } from './api-fixture';

let t: TestApi;
const runIds = Array.from({ length: 12 }, (_, i) => `listed-${String(i).padStart(2, '0')}`);
const running = ['listed-01', 'listed-04', 'listed-09'];

/** Changes run.json in S3 without the API knowing, as a worker on another machine would. */
async function setStatus(runId: string, status: RunStatus): Promise<void> {
  const record = runRecordSchema.parse(await t.store.getJson(runRecordKey(runId)));
  await t.store.putJson(runRecordKey(runId), { ...record, status, updatedAt: new Date().toISOString() });
}

interface ListAnswer {
  runs: { runId: string; status: string }[];
  nextCursor: string | null;
  total: number;
}

async function list(query: string): Promise<ListAnswer> {
  const answer = await t.http.get(`/runs${query}`).set(AUTH);
  expect(answer.status).toBe(200);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  return answer.body as ListAnswer;
}

/** Follows nextCursor from the first page to the last. */
async function listAll(query: Record<string, string>): Promise<ListAnswer['runs']> {
  const runs: ListAnswer['runs'] = [];
  let cursor: string | null = null;
  do {
    const params = new URLSearchParams({ ...query, ...(cursor ? { cursor } : {}) });
    const page = await list(`?${params}`);
    runs.push(...page.runs);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return runs;
}

beforeAll(async () => {
  t = await startTestApi();
  await seedDataset(t.store, 'fmnist');
  for (const runId of runIds) {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId })
      .expect(201);
  }
  for (const runId of running) await setStatus(runId, 'running');
});
afterAll(() => t.close());

describe('GET /runs', () => {
  it('pages through every run oldest first, newest first, and by status', async () => {
    const first = await list('?limit=5');
    expect(first.runs.map((run) => run.runId)).toEqual(runIds.slice(0, 5));
    expect(first.total).toBe(12);
    expect(first.nextCursor).toEqual(expect.any(String));
    for (const run of first.runs) expect(runSummarySchema.parse(run)).toEqual(run);
    expect(first.runs[0]).toMatchObject({
      dataset: 'fmnist',
      device: 'any',
      progress: { shard: 0, numShards: 2, step: 0, totalSteps: 100 },
      lastCommittedStep: null,
      loss: null,
    });

    expect((await listAll({ limit: '5' })).map((run) => run.runId)).toEqual(runIds);
    expect((await listAll({ limit: '7', order: 'desc' })).map((run) => run.runId)).toEqual(
      [...runIds].reverse(),
    );
    const byStatus = await listAll({ limit: '2', status: 'running' });
    expect(byStatus.map((run) => [run.runId, run.status])).toEqual(running.map((id) => [id, 'running']));
    expect((await list('?status=running')).total).toBe(3);
    expect(await list('?status=failed')).toEqual({ runs: [], nextCursor: null, total: 0 });

    const everything = await list('');
    expect(everything.runs).toHaveLength(12);
    expect(everything.nextCursor).toBeNull();
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=501', 'limit'],
    ['limit=ten', 'limit'],
    ['status=sleeping', 'status'],
    ['cursor=bm90LWEtY3Vyc29y', 'cursor'],
    ['order=random', 'order'],
  ])('answers 400 naming the field for %s', async (query, field) => {
    const answer = await t.http.get(`/runs?${query}`).set(AUTH);
    expect(answer.status).toBe(400);
    expect(answer.body.reasons).toEqual([expect.stringMatching(new RegExp(`^${field}: `))]);
  });

  it('rebuilds the listing from S3 after Redis lost its keys', async () => {
    expect((await list('')).total).toBe(12);
    // Written behind the API's back: the index cannot know, only a rebuild from S3 shows it.
    await setStatus('listed-06', 'failed');
    expect((await list('?status=failed')).total).toBe(0);

    await t.flushQueues();
    const answers = await Promise.all([list('?limit=500'), list('?status=failed'), list('?limit=3')]);
    expect(answers[0].runs.map((run) => run.runId)).toEqual(runIds);
    expect(answers[0].total).toBe(12);
    expect(answers[1].runs.map((run) => run.runId)).toEqual(['listed-06']);
    expect(answers[2].runs.map((run) => run.runId)).toEqual(runIds.slice(0, 3));
    expect((await listAll({ limit: '4', status: 'running' })).map((run) => run.runId)).toEqual(running);
  });

  it('documents its query parameters and answer', async () => {
    const doc = (await t.http.get('/docs-json').set(AUTH)).body;
    const operation = doc.paths['/runs'].get;
    const limit = operation.parameters.find((parameter: { name: string }) => parameter.name === 'limit');
    expect(limit).toMatchObject({ in: 'query', required: false, schema: { maximum: 500, default: 50 } });
    expect(operation.parameters.map((parameter: { name: string }) => parameter.name).sort()).toEqual([
      'cursor',
      'limit',
      'order',
      'status',
    ]);
    const answer = operation.responses['200'].content['application/json'].schema;
    expect(Object.keys(answer.properties)).toEqual(['runs', 'nextCursor', 'total']);
  });
});
