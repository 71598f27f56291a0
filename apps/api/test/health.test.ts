import { createServer } from 'node:net';
import request from 'supertest';
import { bootstrapApi, type RunningApi } from '../src/bootstrap';
import { ServingState } from '../src/health/serving-state';
import { startTestStorage, type TestStorage } from './api-fixture';

const KEY = { Authorization: 'Bearer k' };

/** A port nothing listens on: bound once by the system, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('health routes while Redis is down', () => {
  let storage: TestStorage;
  let api: RunningApi;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    storage = await startTestStorage();
    api = await bootstrapApi({
      store: storage.store,
      redisConnection: { host: '127.0.0.1', port: await closedPort(), maxRetriesPerRequest: null },
      apiKeys: ['k'],
      queuePrefix: `dinoq-test-down-${process.pid}`,
      reconcileIntervalMs: 0,
      reconcileOnStart: false,
      logger: false,
    });
    http = request(api.app.getHttpServer());
  });
  afterAll(async () => {
    await api.close();
    await storage.close();
  });

  it('stays live and ready, and reports Redis down in /health', async () => {
    expect((await http.get('/health/live')).body).toEqual({ status: 'ok' });
    const ready = await http.get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready' });

    const open = await http.get('/health');
    expect(open.status).toBe(200);
    expect(open.body).toEqual({ status: 'degraded' });
    const full = await http.get('/health').set(KEY);
    expect(full.status).toBe(200);
    expect(full.body).toMatchObject({
      status: 'degraded',
      checks: { redis: { status: 'down', latencyMs: null }, storage: { status: 'up', error: null } },
      workers: { count: 0 },
    });
    expect(full.body.checks.redis.error).toEqual(expect.any(String));
  });

  it('answers 503 for queue demand, which needs Redis', async () => {
    const res = await http.get('/metrics/queues/train-gpu/demand').set(KEY);
    expect(res.status).toBe(503);
    expect(res.body.message).toMatch(/^queue demand could not be read: /);
  });

  it('turns unready, and /health 503, once the process begins to shut down; liveness stays', async () => {
    api.app.get(ServingState).beginShutdown();
    const ready = await http.get('/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body).toEqual({ status: 'shutting-down' });
    const report = await http.get('/health').set(KEY);
    expect(report.status).toBe(503);
    expect(report.body).toEqual({ status: 'shutting-down' });
    expect((await http.get('/health/live')).status).toBe(200);
  });
});
