import { Worker } from 'bullmq';
import { announceWorker, withdrawWorker } from '@dinoq/jobs';
import { ObjectStore, createS3Client } from '@dinoq/storage';
import { readApiEnv } from '../src/api-env';
import { bootstrapApi } from '../src/bootstrap';
import { ApiKeyVerifier } from '../src/http/api-key-verifier';
import sharp from 'sharp';
import { checkDecodes, decodeUpload } from '../src/attention/image-upload';
import request from 'supertest';
import { AUTH, TINY_RUN, redisConnection, seedDataset, startTestApi, type TestApi } from './api-fixture';

let t: TestApi;
const workerId = `test-worker-${process.pid}`;

beforeAll(async () => {
  t = await startTestApi();
  await seedDataset(t.store, 'fmnist');
  await announceWorker(t.redis, {
    workerId,
    hostname: 'gpu-node-1',
    queuePrefix: t.prefix,
    pid: 4242,
    deviceClass: 'gpu',
    backend: 'tensorflow-gpu',
    kernels: 'cuda',
    cores: 8,
    trainReplicas: 'auto',
    dataThreads: '2',
    queues: ['train-gpu'],
    startedAt: new Date().toISOString(),
    lastSeen: new Date().toISOString(),
    currentJob: null,
  });
});
afterAll(async () => {
  await withdrawWorker(t.redis, workerId);
  await t.close();
});

describe('GET /health', () => {
  it('answers with a key with Redis, storage and workers', async () => {
    const res = await t.http.get('/health').set(AUTH);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'ok',
      checks: { redis: { status: 'up', error: null }, storage: { status: 'up', error: null } },
    });
    expect(res.body.checks.redis.latencyMs).toBeGreaterThanOrEqual(0);
    expect(res.body.workers.byDeviceClass.gpu).toBeGreaterThanOrEqual(1);
    expect(res.body.workers.list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          workerId,
          deviceClass: 'gpu',
          backend: 'tensorflow-gpu',
          cores: 8,
          trainReplicas: 'auto',
          dataThreads: '2',
        }),
      ]),
    );
    expect((await t.http.get('/health/live')).body).toEqual({ status: 'ok' });
  });

  it('lists only the workers of its own queue prefix', async () => {
    const stranger = `${workerId}-other-deployment`;
    const seen = async () =>
      ((await t.http.get('/health').set(AUTH)).body.workers.list as { workerId: string }[]).map(
        (w) => w.workerId,
      );
    const announcement = {
      hostname: 'elsewhere',
      pid: 1,
      deviceClass: 'cpu' as const,
      backend: 'wasm',
      kernels: 'simd',
      cores: 2,
      trainReplicas: '1',
      dataThreads: '1',
      queues: ['train-cpu'],
      startedAt: new Date().toISOString(),
      lastSeen: new Date().toISOString(),
      currentJob: null,
    };
    await announceWorker(t.redis, { ...announcement, workerId: stranger, queuePrefix: `${t.prefix}-other` });
    try {
      expect(await seen()).toContain(workerId);
      expect(await seen()).not.toContain(stranger);
    } finally {
      await withdrawWorker(t.redis, stranger);
    }
  });

  it('stays 200 and reports storage down, naming it, when the object store is unreachable', async () => {
    const client = createS3Client({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      accessKeyId: 'a',
      secretAccessKey: 'b',
      maxAttempts: 1,
    });
    const api = await bootstrapApi({
      store: new ObjectStore({ client, bucket: 'nowhere' }),
      redisConnection,
      apiKeys: ['k'],
      queuePrefix: `${t.prefix}-down`,
      reconcileIntervalMs: 0,
      reconcileOnStart: false,
      logger: false,
    });
    try {
      const res = await request(api.app.getHttpServer()).get('/health').set('Authorization', 'Bearer k');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: 'degraded',
        checks: { redis: { status: 'up' }, storage: { status: 'down' } },
      });
      expect(res.body.checks.storage.error).toMatch(/health\/probe|ECONNREFUSED/);
    } finally {
      await api.close();
      client.destroy();
    }
  });
});

describe('GET /metrics', () => {
  it('needs a key and exposes queue depth, runs, workers and job durations', async () => {
    expect((await t.http.get('/metrics')).status).toBe(401);
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'metered', device: 'cpu' })
      .expect(201);

    const first = await t.http.get('/metrics').set(AUTH);
    expect(first.status).toBe(200);
    expect(first.headers['content-type']).toMatch(/^text\/plain/);
    expect(first.text).toContain('# TYPE dinoq_queue_jobs gauge');
    expect(first.text).toMatch(/dinoq_queue_jobs\{queue="train-cpu",state="waiting"\} 1\n/);
    expect(first.text).toMatch(/dinoq_queue_jobs\{queue="train-gpu",state="waiting"\} 0\n/);
    expect(first.text).toMatch(/dinoq_runs\{status="queued"\} 1\n/);
    expect(first.text).toMatch(/dinoq_workers\{device_class="gpu"\} [1-9]/);

    // A real worker finishes the shard; the API sees the completion through QueueEvents.
    const worker = new Worker('train-cpu', async () => ({ ok: true }), {
      connection: redisConnection,
      prefix: t.prefix,
    });
    try {
      let text = '';
      for (let attempt = 0; attempt < 50; attempt += 1) {
        text = (await t.http.get('/metrics').set(AUTH)).text;
        if (/dinoq_job_duration_seconds_count\{queue="train-cpu"\} 1/.test(text)) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(text).toMatch(/dinoq_job_duration_seconds_count\{queue="train-cpu"\} 1\n/);
      expect(text).toMatch(/dinoq_queue_jobs\{queue="train-cpu",state="completed"\} 1\n/);
    } finally {
      await worker.close();
    }
  });
});

describe('OpenAPI', () => {
  it('serves a document listing every route, behind the key', async () => {
    expect((await t.http.get('/docs-json')).status).toBe(401);
    const res = await t.http.get('/docs-json').set(AUTH);
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBe('dinoq API');
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/datasets',
        '/datasets/import',
        '/datasets/{name}',
        '/datasets/{name}/import',
        '/events',
        '/health',
        '/health/live',
        '/health/ready',
        '/metrics',
        '/metrics/queues/{queue}/demand',
        '/presets',
        '/runs',
        '/runs/{id}',
        '/runs/{id}/artifacts',
        '/runs/{id}/artifacts/url',
        '/runs/{id}/attention',
        '/runs/{id}/attention/{exportId}',
        '/runs/{id}/cancel',
        '/runs/{id}/evaluations',
        '/runs/{id}/evaluations/{evalId}',
        '/runs/{id}/metrics',
        '/runs/{id}/repair',
        '/runs/{id}/resize',
        '/runs/{id}/resume',
        '/schedules',
        '/schedules/{id}',
        '/session',
        '/sweeps',
        '/sweeps/{id}',
        '/sweeps/{id}/cancel',
      ].sort(),
    );
    const createRun = doc.paths['/runs'].post;
    const schema = createRun.requestBody.content['application/json'].schema;
    expect(schema.required).toEqual(['dataset']);
    expect(schema.properties.device.enum).toEqual(['gpu', 'cpu', 'any']);
    expect(schema.properties.preset.enum).toContain('fmnist-tiny');
    expect(createRun.security).toEqual([{ bearer: [] }]);
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    const ui = await t.http.get('/docs/').set(AUTH);
    expect(ui.status).toBe(200);
    expect(ui.text).toMatch(/swagger-ui/i);
  });

  it('documents what metrics, evaluations and attention exports answer, from the stored schemas', async () => {
    const doc = (await t.http.get('/docs-json').set(AUTH)).body;
    const ok = (path: string) => doc.paths[path].get.responses['200'].content['application/json'].schema;
    expect(ok('/runs/{id}/metrics').items.required).toEqual(expect.arrayContaining(['step', 'loss', 'time']));
    expect(doc.paths['/runs/{id}/metrics'].get.responses['200'].headers).toHaveProperty('X-Skipped-Lines');
    const report = ok('/runs/{id}/evaluations/{evalId}').properties.report;
    expect(report.properties.knn.items.required).toEqual(['k', 'top1', 'top5']);
    expect(ok('/runs/{id}/evaluations').items.properties.report.nullable).toBe(true);
    expect(ok('/runs/{id}/attention/{exportId}').properties.index.properties.images.type).toBe('array');
  });
});

describe('configuration and helpers', () => {
  it('refuses to start without API keys unless auth is explicitly off', () => {
    expect(() => readApiEnv({})).toThrow(/DINOQ_API_KEYS is empty/);
    expect(() => readApiEnv({ DINOQ_API_KEYS: ' , ' })).toThrow(/DINOQ_API_KEYS/);
    expect(readApiEnv({ DINOQ_API_KEYS: 'a, b' })).toMatchObject({
      apiKeys: ['a', 'b'],
      authDisabled: false,
      port: 3000,
      reconcileIntervalMs: 30_000,
    });
    expect(readApiEnv({ DINOQ_AUTH: 'off', PORT: '8080', DINOQ_RECONCILE_INTERVAL_S: '0' })).toMatchObject({
      apiKeys: [],
      authDisabled: true,
      port: 8080,
      reconcileIntervalMs: 0,
    });
    expect(() => readApiEnv({ DINOQ_API_KEYS: 'a', PORT: 'http' })).toThrow(/PORT must be an integer/);
    expect(() => readApiEnv({ DINOQ_AUTH: 'maybe' })).toThrow(/DINOQ_AUTH/);
  });

  it('verifies bearer keys, or lets everything through when disabled', () => {
    const verifier = new ApiKeyVerifier(['alpha', 'beta']);
    expect(verifier.verify('Bearer beta')).toEqual({ ok: true });
    expect(verifier.verify('Bearer alph')).toEqual({ ok: false, reason: 'invalid API key' });
    expect(verifier.verify('Bearer alpha extra')).toMatchObject({ ok: false });
    expect(verifier.verify(undefined)).toMatchObject({ ok: false });
    expect(new ApiKeyVerifier([], true).verify(undefined)).toEqual({ ok: true });
  });

  it('recognises PNG and JPEG uploads by their first bytes', () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]);
    expect(decodeUpload(png.toString('base64'), 'f')).toMatchObject({ format: 'png', extension: 'png' });
    expect(
      decodeUpload(`data:image/jpg;base64,${Buffer.from([0xff, 0xd8, 0xff, 0xdb]).toString('base64')}`, 'f')
        .format,
    ).toBe('jpeg');
    expect(() => decodeUpload(Buffer.from([0x89, 0x50]).toString('base64'), 'images.upload.0')).toThrow(
      /images\.upload\.0: is not a PNG or JPEG/,
    );
    expect(() => decodeUpload('abc', 'f')).toThrow(/not valid base64/);
  });

  it('refuses an upload whose pixels do not decode', async () => {
    const good = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const size = { width: 8, height: 8 };
    await expect(
      checkDecodes(decodeUpload(good.toString('base64'), 'f'), size, 'f'),
    ).resolves.toBeUndefined();
    const cut = good.subarray(0, good.length - 20);
    await expect(
      checkDecodes(decodeUpload(cut.toString('base64'), 'images.upload.1'), size, 'images.upload.1'),
    ).rejects.toThrow(/images\.upload\.1: does not decode as png/);
  });
});
