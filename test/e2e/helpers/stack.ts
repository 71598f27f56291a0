import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Queue, QueueEvents, type RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';
import {
  JobProducer,
  QueueName,
  RunRepository,
  allQueues,
  redisConnectionFromEnv,
  type RunRecord,
} from '@dinoq/jobs';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  ObjectStore,
  createS3Client,
  datasetManifestKey,
  startEmbeddedS3,
  type EmbeddedS3,
} from '@dinoq/storage';
import { bootstrapApi, type RunningApi } from '../../../apps/api/src/bootstrap';
import { WorkerProcess } from './worker-process';

const BUCKET = 'dinoq-e2e';

/** The config every e2e run starts from: a one-block ViT so a step takes about 0.1 s on wasm. */
export const TINY_CONFIG = {
  model: { depth: 1, embedDim: 16, numHeads: 2 },
  head: { outDim: 64, hiddenDim: 32, bottleneckDim: 16 },
  augment: { localCropsNumber: 2 },
  train: { batchSize: 8, epochs: 1, stepsPerShard: 2 },
};

export interface HttpAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export interface E2EStack {
  store: ObjectStore;
  runs: RunRepository;
  producer: JobProducer;
  redis: Redis;
  redisUrl: string;
  prefix: string;
  api: RunningApi;
  http<T = Record<string, unknown>>(method: string, route: string, body?: unknown): Promise<HttpAnswer<T>>;
  events(queue: QueueName): Promise<QueueEvents>;
  /** A worker process for this stack; extra variables override the defaults. */
  startWorker(name: string, extraEnv?: NodeJS.ProcessEnv): WorkerProcess;
  importDataset(name: string, limit: number): Promise<void>;
  createRun(runId: string, overrides?: Record<string, unknown>, dataset?: string): Promise<RunRecord>;
  waitForRun(
    runId: string,
    done: (run: RunRecord) => boolean,
    timeoutMs: number,
    what?: string,
  ): Promise<RunRecord>;
  close(): Promise<void>;
}

/** Resolves at the first progress event of `jobId` whose step is at least `minStep`. */
export function progressAtLeast(events: QueueEvents, jobId: string, minStep: number): Promise<number> {
  return new Promise((resolve) => {
    const onProgress = ({ jobId: id, data }: { jobId: string; data: unknown }) => {
      const step = (data as { step?: number }).step ?? -1;
      if (id === jobId && step >= minStep) {
        events.off('progress', onProgress);
        resolve(step);
      }
    };
    events.on('progress', onProgress);
  });
}

export async function waitFor<T>(
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs: number,
  what: string,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A Redis of the test's own, so FLUSHALL wipes nothing anybody else is using. */
export async function startPrivateRedis(): Promise<{ url: string; close(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => undefined);
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await waitFor(
      async () => {
        if (probe.status !== 'ready') await probe.connect().catch(() => undefined);
        return (await probe.ping()) === 'PONG';
      },
      10_000,
      `redis-server on port ${port}`,
    );
  } finally {
    probe.disconnect();
  }
  return {
    url,
    close: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A real s3rver in a temporary folder, the API in this process (HTTP on a free port) and a fresh
 * BullMQ key prefix on a real Redis; workers run as separate `node` processes against it.
 */
export async function startStack(
  options: {
    redisUrl?: string;
    reconcileIntervalMs?: number;
    /** Period of the API's sweep controller; off (0) unless given. */
    sweepIntervalMs?: number;
    /** Keys the API accepts (the first is the one `http` sends); none: authentication off. */
    apiKeys?: string[];
  } = {},
): Promise<E2EStack> {
  const directory = await mkdtemp(path.join(tmpdir(), 'dinoq-e2e-s3-'));
  const s3: EmbeddedS3 = await startEmbeddedS3({ directory, bucket: BUCKET });
  const client = createS3Client({
    endpoint: s3.endpoint,
    region: EMBEDDED_S3_REGION,
    ...EMBEDDED_S3_CREDENTIALS,
  });
  const store = new ObjectStore({
    client,
    bucket: BUCKET,
    listing: s3.continuationTokens ? 'continuation-token' : 'marker',
  });
  const redisUrl = options.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const connection = redisConnectionFromEnv({ REDIS_URL: redisUrl }) as RedisOptions;
  const prefix = `dinoq-e2e-${randomBytes(4).toString('hex')}`;
  const redis = new Redis(connection);
  const producer = new JobProducer(connection, prefix);
  const api = await bootstrapApi({
    store,
    redisConnection: connection,
    apiKeys: options.apiKeys ?? [],
    authDisabled: options.apiKeys === undefined,
    queuePrefix: prefix,
    reconcileIntervalMs: options.reconcileIntervalMs ?? 0,
    reconcileOnStart: options.reconcileIntervalMs !== undefined,
    sweepIntervalMs: options.sweepIntervalMs ?? 0,
    logger: false,
  });
  const runs = new RunRepository(store);
  const workers: WorkerProcess[] = [];
  const queueEvents: QueueEvents[] = [];

  const obliterate = async () => {
    for (const name of allQueues) {
      const queue = new Queue(name, { connection, prefix });
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
    }
  };
  await obliterate();

  const http = async <T>(method: string, route: string, body?: unknown): Promise<HttpAnswer<T>> => {
    const key = options.apiKeys?.[0];
    const response = await fetch(`${api.url}${route}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  };

  const stack: E2EStack = {
    store,
    runs,
    producer,
    redis,
    redisUrl,
    prefix,
    api,
    http,
    async events(queue) {
      const events = new QueueEvents(queue, { connection, prefix });
      await events.waitUntilReady();
      queueEvents.push(events);
      return events;
    },
    startWorker(name, extraEnv = {}) {
      const worker = new WorkerProcess(name, {
        ...process.env,
        REDIS_URL: redisUrl,
        S3_ENDPOINT: s3.endpoint,
        S3_BUCKET: BUCKET,
        S3_REGION: EMBEDDED_S3_REGION,
        S3_ACCESS_KEY_ID: EMBEDDED_S3_CREDENTIALS.accessKeyId,
        S3_SECRET_ACCESS_KEY: EMBEDDED_S3_CREDENTIALS.secretAccessKey,
        DINOQ_QUEUE_PREFIX: prefix,
        DINOQ_BACKEND: 'wasm',
        DINOQ_DEVICE_CLASS: 'cpu',
        DINOQ_LOCK_MS: '3000',
        DINOQ_SHUTDOWN_GRACE_MS: '5000',
        LOG_LEVEL: 'info',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...extraEnv,
      });
      workers.push(worker);
      return worker;
    },
    async importDataset(name, limit) {
      const answer = await http('POST', '/datasets/import', {
        name,
        source: { kind: 'fashion-mnist', limit },
      });
      if (answer.status !== 202)
        throw new Error(`import ${name}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
      await waitFor(() => store.exists(datasetManifestKey(name)), 60_000, `dataset ${name} to be imported`);
    },
    async createRun(runId, overrides = {}, dataset = 'fmnist') {
      const answer = await http('POST', '/runs', {
        runId,
        dataset,
        preset: 'fmnist-tiny',
        config: mergeDeep(TINY_CONFIG, overrides),
        device: 'cpu',
      });
      if (answer.status !== 201)
        throw new Error(`create run ${runId}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
      return runs.get(runId);
    },
    waitForRun(runId, done, timeoutMs, what = 'the run') {
      return waitFor(
        async () => {
          const run = await runs.get(runId);
          return done(run) ? run : null;
        },
        timeoutMs,
        `${what} (${runId})`,
      );
    },
    async close() {
      await Promise.all(workers.map((worker) => worker.stop()));
      await Promise.all(queueEvents.map((events) => events.close()));
      await api.close();
      await obliterate();
      await producer.close();
      redis.disconnect();
      client.destroy();
      await s3.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
  return stack;
}

function mergeDeep(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] =
      typeof value === 'object' &&
      value !== null &&
      !Array.isArray(value) &&
      typeof current === 'object' &&
      current !== null
        ? mergeDeep(current as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}
