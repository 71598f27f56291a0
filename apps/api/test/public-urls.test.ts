import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalKey, storageFromEnv, type Storage } from '@dinoq/storage';
import { AUTH, TINY_RUN, seedDataset, startTestApi, type TestApi } from './api-fixture';

const PUBLIC = 'https://files.example.test';
let dataDir: string;
let storage: Storage;
let t: TestApi;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dinoq-public-urls-'));
  storage = await storageFromEnv({
    DINOQ_DATA_DIR: dataDir,
    S3_BUCKET: 'dinoq-public',
    S3_PUBLIC_ENDPOINT: PUBLIC,
  });
  t = await startTestApi({ store: storage.store });
  await seedDataset(storage.store, 'fmnist');
});
afterAll(async () => {
  await t.close();
  await storage.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('presigned artifact URLs with S3_PUBLIC_ENDPOINT', () => {
  it('point at the public host, not the server the API talks to', async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'public-run', device: 'cpu' })
      .expect(201);
    await storage.store.putJson(evalKey('public-run', 'eval-1'), { done: true });

    const one = await t.http
      .get('/runs/public-run/artifacts/url')
      .query({ key: 'evals/eval-1.json' })
      .set(AUTH)
      .expect(200);
    const url = new URL(one.body.url);
    expect(url.origin).toBe(PUBLIC);
    expect(url.pathname).toBe('/dinoq-public/runs/public-run/evals/eval-1.json');
    expect(url.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(storage.endpoint).not.toBe(PUBLIC);

    const listing = await t.http.get('/runs/public-run/artifacts').set(AUTH).expect(200);
    expect(listing.body.evaluations.map((entry: { url: string }) => new URL(entry.url).origin)).toEqual([
      PUBLIC,
    ]);
  });
});
