import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { buildWorker } from '../../../test/e2e/helpers/build';
import { JobRegistry } from '../src/job-registry';
import { readWorkerSettings, startWorker } from '../src/main';
import type { WorkerJobs } from '../src/worker-jobs';

/* startWorker() with a registry that lacks a handler for a job its queues receive. */

jest.setTimeout(60_000);

beforeAll(() => buildWorker());

test('a worker whose queues receive a job without a handler refuses to start, naming the job and the queue', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'dinoq-worker-start-'));
  try {
    const settings = readWorkerSettings({
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      DINOQ_DATA_DIR: dataDir,
      DINOQ_QUEUE_PREFIX: `dinoq-start-${randomBytes(4).toString('hex')}`,
      DINOQ_BACKEND: 'wasm',
      DINOQ_WORKER_QUEUES: 'import,attention',
    });
    const jobs = new JobRegistry<WorkerJobs>('the worker process').register('attention', { runs: 'compute' });
    await expect(startWorker({ settings, jobs, logger: pino({ level: 'silent' }) })).rejects.toThrow(
      'the worker process cannot start: job "import" on queue import has no handler',
    );
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
