import zlib from 'node:zlib';
import sharp from 'sharp';
import { QueueName, announceWorker, withdrawWorker } from '@dinoq/jobs';
import { commitCheckpoint } from '@dinoq/storage';
import { readApiEnv } from '../src/api-env';
import { DEFAULT_UPLOAD_MAX_TOTAL_PIXELS, resolveApiOptions } from '../src/api-options';
import { HealthController } from '../src/health/health.controller';
import { publicRoutes } from '../src/http/public-routes';
import { RunsController } from '../src/runs/runs.controller';
import { cronPatternProblem } from '../src/schedules/cron-pattern';
import { AUTH, TINY_RUN, redisConnection, seedDataset, startTestApi, type TestApi } from './api-fixture';

const SIDE = 4096;
/** Room for two uploads of SIDE × SIDE, so three are refused. */
const UPLOAD_LIMIT = 2 * SIDE * SIDE;
const workerId = `hardening-worker-${process.pid}`;

let t: TestApi;
let probeKeys: jest.SpyInstance;

beforeAll(async () => {
  t = await startTestApi({ uploadMaxTotalPixels: UPLOAD_LIMIT });
  probeKeys = jest.spyOn(t.store, 'exists');
  await seedDataset(t.store, 'fmnist');
  await t.http
    .post('/runs')
    .set(AUTH)
    .send({ ...TINY_RUN, runId: 'run-h', device: 'cpu' })
    .expect(201);
  await commitCheckpoint(t.store, 'run-h', 50, { 'teacher.safetensors': new Uint8Array([1, 2, 3]) });
  await announceWorker(t.redis, {
    workerId,
    hostname: 'secret-host-7',
    queuePrefix: t.prefix,
    pid: 4242,
    deviceClass: 'cpu',
    backend: 'wasm',
    kernels: 'simd',
    cores: 4,
    trainReplicas: '1',
    dataThreads: '1',
    queues: ['train-cpu'],
    startedAt: new Date().toISOString(),
    lastSeen: new Date().toISOString(),
    currentJob: 'train-cpu:run-h:0',
  });
});
afterAll(async () => {
  probeKeys.mockRestore();
  await withdrawWorker(t.redis, workerId);
  await t.close();
});

async function until<T>(read: () => Promise<T | null>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('GET /health', () => {
  const healthProbes = () => probeKeys.mock.calls.filter(([key]) => key === 'health/probe').length;

  it('shares one aggregation between concurrent requests, and refreshes it after a second', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => t.http.get('/health').set(AUTH)));
    expect(answers.map((answer) => answer.status)).toEqual(Array(20).fill(200));
    expect(new Set(answers.map((answer) => answer.body.checkedAt)).size).toBe(1);
    expect(healthProbes()).toBe(1);

    // Probes keep answering from the shared report until it is a second old, then one refresh.
    const refreshed = await until(
      async () => {
        const answer = await t.http.get('/health').set(AUTH);
        return healthProbes() > 1 ? answer : null;
      },
      10_000,
      'the health report to refresh',
    );
    expect(healthProbes()).toBe(2);
    expect(Date.parse(refreshed.body.checkedAt)).toBeGreaterThan(Date.parse(answers[0].body.checkedAt));
  });

  it('tells anonymous callers the status only; workers, hosts and jobs need the key', async () => {
    const anonymous = await t.http.get('/health');
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toEqual({ status: 'ok' });
    const wrongKey = await t.http.get('/health').set('Authorization', 'Bearer not-a-key');
    expect(wrongKey.body).toEqual({ status: 'ok' });
    expect(JSON.stringify(wrongKey.body)).not.toContain('secret-host-7');

    const detailed = await t.http.get('/health').set(AUTH);
    expect(detailed.body).toMatchObject({ status: 'ok', checks: { redis: { status: 'up' } } });
    expect(detailed.body.workers.list).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ workerId, hostname: 'secret-host-7', currentJob: 'train-cpu:run-h:0' }),
      ]),
    );
    expect((await t.http.get('/health/live')).body).toEqual({ status: 'ok' });
  });
});

describe('authentication before bodies', () => {
  /** 20 MB of JSON whitespace gzips to about 20 kB. */
  const bomb = (inflatedBytes: number) => zlib.gzipSync(Buffer.alloc(inflatedBytes, 0x20), { level: 9 });
  const bomb20MB = bomb(20_000_000);
  const createGunzip = Object.getOwnPropertyDescriptor(zlib, 'createGunzip') as PropertyDescriptor;
  let inflated: { streams: number; bytes: number };

  // Counts what the body parser's real gunzip streams produce (the property is read-only, hence
  // defineProperty rather than a jest spy).
  beforeEach(() => {
    inflated = { streams: 0, bytes: 0 };
    const counting = (options?: zlib.ZlibOptions) => {
      const stream = (createGunzip.value as typeof zlib.createGunzip)(options);
      const push = stream.push.bind(stream);
      inflated.streams += 1;
      stream.push = (chunk: Buffer | null, encoding?: BufferEncoding) => {
        inflated.bytes += chunk?.length ?? 0;
        return push(chunk, encoding);
      };
      return stream;
    };
    Object.defineProperty(zlib, 'createGunzip', { ...createGunzip, value: counting });
  });
  afterEach(() => Object.defineProperty(zlib, 'createGunzip', createGunzip));

  // superagent would serialise a Buffer as JSON under this content type; the bytes go as they are.
  const postGzip = (route: string, body: Buffer) =>
    t.http
      .post(route)
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((bytes: Buffer) => bytes as unknown as string)
      .send(body);

  it('answers 401 to an unauthenticated gzip bomb without inflating a byte of it', async () => {
    for (const route of ['/runs', '/runs/run-h/attention', '/schedules']) {
      const res = await postGzip(route, bomb20MB);
      expect(res.status).toBe(401);
      expect(res.body.message).toMatch(/missing Authorization header/);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    const wrongKey = await postGzip('/runs', bomb20MB).set('Authorization', 'Bearer not-a-key');
    expect(wrongKey.status).toBe(401);
    expect(inflated).toEqual({ streams: 0, bytes: 0 });
  });

  it('answers 413 to an authenticated gzip bomb once the inflated body passes the limit', async () => {
    const small = await postGzip('/runs', bomb20MB).set(AUTH);
    expect(small.status).toBe(413);
    expect(small.body.message).toMatch(/256kb/);
    expect(inflated.streams).toBe(1);
    // The parser stops within a few zlib chunks of the 256 kB limit, not after 20 MB.
    expect(inflated.bytes).toBeLessThan(1024 * 1024);

    inflated.bytes = 0;
    const upload = await postGzip('/runs/run-h/attention', bomb(30_000_000)).set(AUTH);
    expect(upload.status).toBe(413);
    expect(upload.body.message).toMatch(/20mb/);
    expect(inflated.bytes).toBeLessThan(21 * 1024 * 1024);
  });

  it('keeps @Public() routes open and nothing else', async () => {
    expect(publicRoutes([RunsController, HealthController])).toEqual([
      { method: 'get', path: '/health' },
      { method: 'get', path: '/health/ready' },
      { method: 'get', path: '/health/live' },
    ]);
    expect((await t.http.get('/health/live')).status).toBe(200);
    expect((await t.http.get('/HEALTH/live/')).status).toBe(200);
    // Same path, other method: not a public route.
    expect((await t.http.post('/health').send({})).status).toBe(401);
    expect((await t.http.get('/docs-json')).status).toBe(401);
    expect((await t.http.get('/no-such-route')).status).toBe(401);
    expect((await t.http.get('/no-such-route').set(AUTH)).status).toBe(404);
  });
});

describe('attention uploads', () => {
  let big: Buffer;

  beforeAll(async () => {
    big = await sharp({ create: { width: SIDE, height: SIDE, channels: 3, background: '#2080c0' } })
      .png({ compressionLevel: 9 })
      .toBuffer();
  });

  const upload = (images: Buffer[]) =>
    t.http
      .post('/runs/run-h/attention')
      .set(AUTH)
      .send({ images: { upload: images.map((image) => image.toString('base64')) } });

  it('refuses a request whose images hold too many pixels together, before decoding any', async () => {
    expect(big.length).toBeLessThan(1024 * 1024);
    const waiting = await t.queue(QueueName.Attention).getWaitingCount();
    // Intact header, truncated pixels: decoding it would answer 400 "does not decode".
    const truncated = big.subarray(0, big.length - 64);
    const res = await upload([big, big, truncated]);
    expect(res.status).toBe(413);
    expect(res.body.field).toBe('images.upload');
    expect(res.body.message).toBe(
      `images.upload: 3 images of ${3 * SIDE * SIDE} pixels in all (4096×4096, 4096×4096, 4096×4096), ` +
        `over the limit of ${UPLOAD_LIMIT} pixels per request (DINOQ_UPLOAD_MAX_TOTAL_PIXELS); ` +
        'send fewer or smaller images',
    );
    expect(await t.queue(QueueName.Attention).getWaitingCount()).toBe(waiting);
    expect(await t.store.list('runs/run-h/attention/')).toEqual([]);

    const corrupt = await upload([big, truncated]);
    expect(corrupt.status).toBe(400);
    expect(corrupt.body.field).toBe('images.upload.1');
    expect(corrupt.body.message).toMatch(/does not decode as png/);
  });

  it('decodes and stores uploads within the limit', async () => {
    const res = await upload([big, big]);
    expect(res.status).toBe(202);
    const stored = await t.store.list(`runs/run-h/attention/${res.body.exportId}/`);
    expect(stored.length).toBe(2);
  });

  it('reads the limit from DINOQ_UPLOAD_MAX_TOTAL_PIXELS, and refuses nonsense', () => {
    expect(readApiEnv({ DINOQ_API_KEYS: 'a' }).uploadMaxTotalPixels).toBe(DEFAULT_UPLOAD_MAX_TOTAL_PIXELS);
    expect(DEFAULT_UPLOAD_MAX_TOTAL_PIXELS).toBe(4 * SIDE * SIDE);
    expect(
      readApiEnv({ DINOQ_API_KEYS: 'a', DINOQ_UPLOAD_MAX_TOTAL_PIXELS: '1000000' }).uploadMaxTotalPixels,
    ).toBe(1_000_000);
    expect(() => readApiEnv({ DINOQ_API_KEYS: 'a', DINOQ_UPLOAD_MAX_TOTAL_PIXELS: '0' })).toThrow(
      /DINOQ_UPLOAD_MAX_TOTAL_PIXELS must be an integer/,
    );
    expect(() =>
      resolveApiOptions({ store: t.store, redisConnection, apiKeys: ['k'], uploadMaxTotalPixels: 1.5 }),
    ).toThrow(/uploadMaxTotalPixels must be a positive integer/);
  });
});

describe('schedule cron patterns', () => {
  it('refuses patterns that are not 5 fields, or 6 with seconds', () => {
    expect(cronPatternProblem('* * *', 'UTC', 10)).toMatch(/expected 5 fields .* got 3/);
    expect(cronPatternProblem('@secondly', 'UTC', 10)).toMatch(/got 1/);
    expect(cronPatternProblem('0 0 3 * * * 2030', 'UTC', 10)).toMatch(/got 7/);
    expect(cronPatternProblem('H * * * *', 'UTC', 10)).toMatch(/hashed values/);
    expect(cronPatternProblem('0 3 * 13 *', 'UTC', 10)).toMatch(/^invalid cron pattern: .*13/);
    expect(cronPatternProblem('0 3 * * thu', 'Europe/Paris', 10)).toBeNull();
  });

  it('applies the floor to the gaps between firings, across minute boundaries too', () => {
    expect(cronPatternProblem('* * * * * *', 'UTC', 10)).toMatch(
      /^fires 1 s apart .*shortest allowed interval is 10 s/,
    );
    expect(cronPatternProblem('*/5 * * * * *', 'UTC', 10)).toMatch(/^fires 5 s apart/);
    expect(cronPatternProblem('0,55 * * * * *', 'UTC', 10)).toMatch(/^fires 5 s apart/);
    expect(cronPatternProblem('*/10 * * * * *', 'UTC', 10)).toBeNull();
    expect(cronPatternProblem('0,30 * * * * *', 'UTC', 10)).toBeNull();
    expect(cronPatternProblem('* * * * *', 'UTC', 10)).toBeNull();
  });

  it('answers 400 naming cron and the figures, and schedules nothing', async () => {
    for (const [cron, reason] of [
      ['* * * * * *', /^cron: fires 1 s apart \(.+ then .+\); the shortest allowed interval is 10 s$/],
      ['* * *', /^cron: invalid cron pattern: expected 5 fields/],
    ] as const) {
      const res = await t.http
        .post('/schedules')
        .set(AUTH)
        .send({ cron, kinds: ['knn'] });
      expect(res.status).toBe(400);
      expect(res.body.reasons).toEqual([expect.stringMatching(reason)]);
    }
    expect(await t.queue(QueueName.EvaluateCpu).getJobSchedulersCount()).toBe(0);

    const ok = await t.http
      .post('/schedules')
      .set(AUTH)
      .send({ cron: '*/10 * * * * *', kinds: ['knn'] });
    expect(ok.status).toBe(201);
    await t.http.delete(`/schedules/${ok.body.scheduleId}`).set(AUTH).expect(204);
  });
});
