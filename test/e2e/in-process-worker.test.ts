/**
 * startWorker() inside another process (a local-stack launcher does this), with no S3 endpoint
 * configured: the worker starts the one embedded s3rver and its compute process writes to it.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { Queue, QueueEvents } from 'bullmq';
import { JobProducer, QueueName, redisConnectionFromEnv } from '@dinoq/jobs';
import { readWorkerSettings, startWorker } from '../../apps/worker/src/main';
import { buildWorker } from './helpers/build';

jest.setTimeout(60_000);

beforeAll(() => buildWorker());

test('an in-process worker with embedded storage imports a dataset and shuts down cleanly', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dinoq-e2e-embedded-'));
  const prefix = `dinoq-e2e-${randomBytes(4).toString('hex')}`;
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const connection = redisConnectionFromEnv({ REDIS_URL: redisUrl });
  const producer = new JobProducer(connection, prefix);
  const events = new QueueEvents(QueueName.Import, { connection, prefix });
  try {
    const worker = await startWorker({
      settings: readWorkerSettings({
        REDIS_URL: redisUrl,
        DINOQ_DATA_DIR: dataDir,
        DINOQ_QUEUE_PREFIX: prefix,
        DINOQ_BACKEND: 'wasm',
        DINOQ_WORKER_QUEUES: 'import',
      }),
      logger: pino({ level: 'silent' }),
    });
    expect(worker).toMatchObject({
      deviceClass: 'cpu',
      queues: [QueueName.Import],
      backend: { name: 'wasm', kind: 'cpu' },
    });
    await events.waitUntilReady();
    const job = await producer.add(QueueName.Import, 'import', {
      datasetName: 'tiny',
      source: { kind: 'fashion-mnist', limit: 8 },
    });
    expect(await job.waitUntilFinished(events, 30_000)).toEqual({
      datasetName: 'tiny',
      kind: 'fashion-mnist',
      splits: { train: 8, test: 8 },
      classes: 10,
      skipped: 0,
    });
    await worker.shutdown('test over');
  } finally {
    await events.close();
    for (const name of [QueueName.Import]) {
      const queue = new Queue(name, { connection, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
    await producer.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
