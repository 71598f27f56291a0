import { availableParallelism, hostname } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'bullmq';
import {
  JobProducer,
  QueueName,
  defaultQueuesFor,
  redisConnectionFromEnv,
  type DeviceClass,
  type WorkerAnnouncement,
} from '@dinoq/jobs';
import { EMBEDDED_S3_CREDENTIALS, EMBEDDED_S3_REGION, storageFromEnv, type Storage } from '@dinoq/storage';
import { ComputeClient } from './compute/compute-client';
import type { ChildBackend } from './compute/protocol';
import { DeviceMutex } from './device-mutex';
import { Heartbeat } from './heartbeat';
import { measureCapacity } from './memory-capacity';
import { SHUTDOWN_MESSAGE, createJobProcessor } from './job-processor';
import { jobsOnQueues } from './job-registry';
import { createLogger, type Logger } from './logger';
import { failFastRedis, indexedRunRepository } from './run-records';
import { newWorkerId } from './worker-identity';
import { workerJobs, type WorkerJobRegistry } from './worker-jobs';
import { readWorkerSettings, type WorkerSettings } from './worker-settings';

export { readWorkerSettings, type WorkerSettings } from './worker-settings';

export interface StartWorkerOptions {
  /** Defaults to the process environment, validated. */
  settings?: WorkerSettings;
  logger?: Logger;
  workerId?: string;
  /** The compiled compute-child.js; defaults to the one next to this file in dist/. */
  computeChildPath?: string;
  /** The worker process's half of the job registry; defaults to src/worker-jobs.ts. */
  jobs?: WorkerJobRegistry;
}

export interface RunningWorker {
  workerId: string;
  backend: ChildBackend;
  deviceClass: DeviceClass;
  queues: QueueName[];
  /**
   * Stops taking jobs; the current job gets the shutdown grace period to finish, after which it is
   * abandoned (a training shard then commits nothing and is retried from the last commit).
   */
  shutdown(reason?: string): Promise<void>;
}

const GPU_QUEUES: readonly QueueName[] = [QueueName.TrainGpu, QueueName.EvaluateGpu];

function defaultComputeChildPath(): string {
  // Under ts-node/ts-jest this file is src/main.ts; the child always runs from the build.
  const dir = __filename.endsWith('.ts') ? path.resolve(__dirname, '../dist') : __dirname;
  return path.join(dir, 'compute-child.js');
}

/** The child connects to the same storage; an embedded s3rver is only ever started here. */
function childEnv(settings: WorkerSettings, storage: Storage): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    S3_ENDPOINT: storage.endpoint,
    S3_BUCKET: storage.bucket,
    DINOQ_BACKEND: settings.backend,
    DINOQ_DATASET_CACHE_MB: String(Math.floor(settings.datasetCacheBytes / (1024 * 1024))),
    DINOQ_TRAIN_REPLICAS: String(settings.trainReplicas),
    DINOQ_DATA_THREADS: String(settings.dataThreads),
  };
  if (storage.embedded) {
    env.S3_REGION = EMBEDDED_S3_REGION;
    env.S3_ACCESS_KEY_ID = EMBEDDED_S3_CREDENTIALS.accessKeyId;
    env.S3_SECRET_ACCESS_KEY = EMBEDDED_S3_CREDENTIALS.secretAccessKey;
  } else {
    for (const name of ['S3_REGION', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const) {
      env[name] = settings.storage[name];
    }
  }
  return env;
}

function resolveQueues(settings: WorkerSettings, deviceClass: DeviceClass): QueueName[] {
  const queues = settings.queues ?? defaultQueuesFor(deviceClass);
  const gpuOnly = queues.filter((queue) => GPU_QUEUES.includes(queue));
  if (deviceClass === 'cpu' && gpuOnly.length > 0) {
    throw new Error(
      `a cpu worker must not consume GPU queues (${gpuOnly.join(', ')}); remove them from DINOQ_WORKER_QUEUES`,
    );
  }
  return queues;
}

/**
 * Starts a worker: storage, the compute process (which loads the tfjs backend), one BullMQ Worker
 * per queue, and the heartbeat. Refuses to start when DINOQ_DEVICE_CLASS=gpu but the backend that
 * loaded does not run on a GPU, or when a job its queues receive has no handler or two (the compute
 * process refuses likewise for the jobs it runs).
 */
export async function startWorker(options: StartWorkerOptions = {}): Promise<RunningWorker> {
  const settings = options.settings ?? readWorkerSettings(process.env);
  const logger = options.logger ?? createLogger(settings.logLevel);
  const workerId = options.workerId ?? newWorkerId();
  const jobs = options.jobs ?? workerJobs;
  const storage = await storageFromEnv(settings.storage);
  const compute = new ComputeClient({
    childPath: options.computeChildPath ?? defaultComputeChildPath(),
    env: childEnv(settings, storage),
    logger,
  });

  let backend: ChildBackend;
  let deviceClass: DeviceClass;
  let queues: QueueName[];
  try {
    backend = await compute.start();
    deviceClass = settings.deviceClass ?? (backend.kind === 'gpu' ? 'gpu' : 'cpu');
    if (deviceClass === 'gpu' && backend.kind !== 'gpu') {
      throw new Error(
        `DINOQ_DEVICE_CLASS=gpu but the backend is not a GPU one (${backend.detail}); ` +
          'fix the GPU setup or run this worker as DINOQ_DEVICE_CLASS=cpu',
      );
    }
    queues = resolveQueues(settings, deviceClass);
    jobs.check(jobsOnQueues(queues));
  } catch (error) {
    await compute.close();
    await storage.close();
    throw error;
  }
  const capacity = await measureCapacity(settings, deviceClass, backend);
  logger.info(
    {
      workerId,
      backend: backend.name,
      kernels: backend.kernels,
      detail: backend.detail,
      deviceClass,
      queues,
      ...capacity,
    },
    'worker starting',
  );

  const connection = redisConnectionFromEnv({ REDIS_URL: settings.redisUrl });
  // A heartbeat must fail fast while Redis is away, not hold up a shutdown.
  const redis = failFastRedis(settings.redisUrl);
  redis.on('error', (error: Error) => logger.warn({ err: error.message }, 'redis (heartbeat) error'));
  const producer = new JobProducer(connection, settings.queuePrefix);
  const runs = indexedRunRepository(storage.store, redis, settings.queuePrefix, (message) =>
    logger.warn(message),
  );
  const mutex = new DeviceMutex();
  const shutdownController = new AbortController();
  const startedAt = new Date().toISOString();
  let currentJob: string | null = null;
  let trainFlopsPerSecond: number | null = null;

  const heartbeat = new Heartbeat(
    redis,
    (): WorkerAnnouncement => ({
      workerId,
      hostname: hostname(),
      pid: process.pid,
      deviceClass,
      backend: backend.name,
      kernels: backend.kernels,
      cores: availableParallelism(),
      trainReplicas: String(settings.trainReplicas),
      dataThreads: String(settings.dataThreads),
      queues,
      startedAt,
      lastSeen: new Date().toISOString(),
      currentJob,
      memoryBytes: capacity.memoryBytes,
      stepMemoryBytes: capacity.stepMemoryBytes,
      queuePrefix: settings.queuePrefix,
      trainFlopsPerSecond,
    }),
    logger,
  );

  const processor = createJobProcessor({
    jobs,
    mutex,
    compute,
    producer,
    store: storage.store,
    runs,
    workerId,
    logger,
    shutdown: shutdownController.signal,
    onCurrentJob: (label) => {
      currentJob = label;
      heartbeat.beat();
    },
    onTrainSpeed: (flopsPerSecond) => {
      trainFlopsPerSecond = flopsPerSecond;
    },
  });

  const workers = queues.map((queue) => {
    const worker = new Worker(queue, processor, {
      connection,
      prefix: settings.queuePrefix,
      concurrency: 1,
      lockDuration: settings.lockMs,
      stalledInterval: settings.lockMs,
      maxStalledCount: 1,
      name: workerId,
    });
    worker.on('error', (error) => logger.warn({ queue, err: error.message }, 'queue worker error'));
    worker.on('stalled', (jobId) => logger.warn({ queue, jobId }, 'job stalled; it goes back to the queue'));
    return worker;
  });
  heartbeat.start();
  logger.info({ workerId, queues, lockMs: settings.lockMs }, 'worker ready');

  let stopping: Promise<void> | null = null;
  const shutdown = (reason = 'shutdown requested'): Promise<void> => {
    stopping ??= (async () => {
      logger.info(
        { reason, graceMs: settings.shutdownGraceMs, abandonWaitMs: settings.abandonWaitMs, currentJob },
        'worker stopping',
      );
      shutdownController.abort(new Error(SHUTDOWN_MESSAGE));
      const closing = Promise.all(workers.map((worker) => worker.close()));
      // After the grace period the current job is told to stop at its next safe point; if it
      // does not within abandonWaitMs (a step can be long), the compute process is killed.
      const abandonTimer = setTimeout(() => {
        if (!compute.busy) return;
        logger.warn({ currentJob }, 'grace period over: abandoning the current job');
        compute.abandon(SHUTDOWN_MESSAGE);
      }, settings.shutdownGraceMs);
      const killTimer = setTimeout(() => {
        if (!compute.busy) return;
        logger.error({ currentJob }, 'the current job did not stop: killing the compute process');
        compute.kill();
      }, settings.shutdownGraceMs + settings.abandonWaitMs);
      try {
        await closing;
      } finally {
        clearTimeout(abandonTimer);
        clearTimeout(killTimer);
      }
      await heartbeat.stop();
      await producer.close();
      await compute.close();
      redis.disconnect();
      await storage.close();
      logger.info({ workerId }, 'worker stopped');
    })();
    return stopping;
  };

  return { workerId, backend, deviceClass, queues, shutdown };
}

function runFromCommandLine(): void {
  let settings: WorkerSettings;
  try {
    settings = readWorkerSettings(process.env);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger(settings.logLevel);
  let worker: RunningWorker | null = null;
  let signalled: string | null = null;
  const stop = (signal: string) => {
    if (signalled) return;
    signalled = signal;
    if (!worker) return; // start-up finishes first, then shuts down at once
    worker.shutdown(signal).then(
      () => process.exit(0),
      (error: Error) => {
        logger.error({ err: error.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  startWorker({ settings, logger }).then(
    (started) => {
      worker = started;
      if (signalled) {
        const signal = signalled;
        signalled = null;
        stop(signal);
      }
    },
    (error: Error) => {
      logger.fatal({ err: error.message }, 'worker could not start');
      process.exit(1);
    },
  );
}

if (require.main === module) runFromCommandLine();
