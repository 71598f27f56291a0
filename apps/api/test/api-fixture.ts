import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue, type RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';
import request from 'supertest';
import { redisConnectionFromEnv, type QueueName } from '@dinoq/jobs';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  ObjectStore,
  createS3Client,
  datasetManifestKey,
  startEmbeddedS3,
} from '@dinoq/storage';
import { bootstrapApi, type BootstrapOptions, type RunningApi } from '../src/bootstrap';

export const API_KEY = 'test-key-0123456789';
export const AUTH = { Authorization: `Bearer ${API_KEY}` };
const BUCKET = 'dinoq-api-test';

type TestAgent = ReturnType<typeof request>;

export const redisConnection = redisConnectionFromEnv() as RedisOptions;

export interface TestApi {
  api: RunningApi;
  http: TestAgent;
  store: ObjectStore;
  prefix: string;
  redis: Redis;
  /** A queue handle of our own, to check what the API enqueued without going through it. */
  queue(name: QueueName): Queue;
  /** Deletes every BullMQ key of this test's prefix: what a Redis FLUSHALL does to it. */
  flushQueues(): Promise<void>;
  close(): Promise<void>;
}

export interface TestStorage {
  store: ObjectStore;
  close(): Promise<void>;
}

/** A real s3rver in this process with its data in a fresh temporary folder. */
export async function startTestStorage(): Promise<TestStorage> {
  const directory = await mkdtemp(join(tmpdir(), 'dinoq-api-s3-'));
  const server = await startEmbeddedS3({ directory, bucket: BUCKET });
  const client = createS3Client({
    endpoint: server.endpoint,
    region: EMBEDDED_S3_REGION,
    ...EMBEDDED_S3_CREDENTIALS,
  });
  return {
    store: new ObjectStore({
      client,
      bucket: BUCKET,
      listing: server.continuationTokens ? 'continuation-token' : 'marker',
    }),
    close: async () => {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** The API on a free port over real Redis (a unique key prefix) and a real s3rver. */
export async function startTestApi(overrides: Partial<BootstrapOptions> = {}): Promise<TestApi> {
  const storage = await startTestStorage();
  const prefix = `dinoq-test-${randomBytes(4).toString('hex')}`;
  const api = await bootstrapApi({
    store: storage.store,
    redisConnection,
    apiKeys: [API_KEY, 'second-key'],
    queuePrefix: prefix,
    reconcileIntervalMs: 0,
    reconcileOnStart: false,
    logger: false,
    ...overrides,
  });
  const redis = new Redis(redisConnection);
  const queues = new Map<QueueName, Queue>();
  const flushQueues = () => deleteKeys(redis, `${prefix}:*`);
  return {
    api,
    http: request(api.app.getHttpServer()),
    store: storage.store,
    prefix,
    redis,
    queue(name) {
      let queue = queues.get(name);
      if (!queue) {
        queue = new Queue(name, { connection: redisConnection, prefix });
        queues.set(name, queue);
      }
      return queue;
    },
    flushQueues,
    close: async () => {
      await Promise.all([...queues.values()].map((queue) => queue.close()));
      await api.close();
      await flushQueues();
      await redis.quit();
      await storage.close();
    },
  };
}

/** A dataset manifest as the import job writes it (no shards needed by the API). */
export async function seedDataset(
  store: ObjectStore,
  name: string,
  trainCount = 640,
  testCount = 100,
): Promise<void> {
  await store.putJson(datasetManifestKey(name), {
    name,
    version: 1,
    imageSize: { width: 28, height: 28, channels: 1 },
    classes: ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'],
    splits: { train: { count: trainCount, shards: [] }, test: { count: testCount, shards: [] } },
    createdAt: new Date().toISOString(),
  });
}

/** fmnist-tiny on 640 images: 10 steps per epoch × 10 epochs = 100 steps, 50 per shard, 2 shards. */
export const TINY_RUN = { dataset: 'fmnist', preset: 'fmnist-tiny' } as const;
