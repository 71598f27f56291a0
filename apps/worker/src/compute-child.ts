/*
 * The compute process: forked once by the worker, it loads the tfjs backend, keeps it warm and
 * caches decoded datasets between jobs, and runs one job at a time as the parent asks over IPC.
 * All tensor work happens here, so the parent's event loop stays free to renew BullMQ locks.
 */
import { storageFromEnv } from '@dinoq/storage';
import { selectBackend } from '@dinoq/dino';
import { DatasetCache } from './compute/dataset-cache';
import { failFastRedis, indexedRunRepository } from './run-records';
import { readWorkerSettings } from './worker-settings';
import { AbandonFlag, type ComputeContext, type JobScope } from './compute/job-scope';
import {
  serializeError,
  type ChildMessage,
  type ComputeJob,
  type LogLevel,
  type ParentMessage,
} from './compute/protocol';
import { checkComputeJobs, runComputeJob } from './compute-jobs';
import { needsGpuSmokeCheck, runGpuSmokeCheck, tfjsGpuProbe } from './gpu-smoke';

function send(message: ChildMessage): void {
  // Once the parent is gone there is nobody to tell; the disconnect handler exits.
  if (process.connected) process.send?.(message);
}

function log(
  requestId: number | null,
  level: LogLevel,
  message: string,
  fields?: Record<string, unknown>,
): void {
  send({ type: 'log', requestId, level, message, fields });
}

function runRecordsOf(
  store: Parameters<typeof indexedRunRepository>[0],
  redisUrl: string,
  queuePrefix: string,
) {
  const redis = failFastRedis(redisUrl);
  redis.on('error', () => undefined);
  return indexedRunRepository(store, redis, queuePrefix, (message) => log(null, 'warn', message));
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('compute-child must be started by the worker with an IPC channel');
  // The worker owns this process: without it, nobody can renew the job lock or use the result.
  process.on('disconnect', () => process.exit(0));
  // A signal to the whole process group must not kill a job mid-step: the parent decides, and
  // tells this process to finish or abandon its job.
  process.on('SIGTERM', () => undefined);
  process.on('SIGINT', () => undefined);

  const abandon = new AbandonFlag();
  let current: ComputeJob | null = null;
  let context: ComputeContext | null = null;
  const queue: ComputeJob[] = [];

  const drain = async (): Promise<void> => {
    if (current || !context) return;
    const job = queue.shift();
    if (!job) return;
    current = job;
    abandon.clear();
    const scope: JobScope = {
      job,
      progress: (progress) => send({ type: 'progress', requestId: job.requestId, progress }),
      log: (level, message, fields, toJob) =>
        send({ type: 'log', requestId: job.requestId, level, message, fields, toJob }),
      throwIfAbandoned: () => abandon.check(),
    };
    try {
      const result = await runComputeJob(context, scope);
      send({ type: 'result', requestId: job.requestId, result });
    } catch (error) {
      send({ type: 'failed', requestId: job.requestId, error: serializeError(error) });
    } finally {
      current = null;
      void drain();
    }
  };

  process.on('message', (message: ParentMessage) => {
    if (message.type === 'run') {
      queue.push(message.job);
      void drain();
    } else if (message.type === 'abandon') {
      abandon.set(message.reason);
      log(current?.requestId ?? null, 'info', `abandoning the current job: ${message.reason}`);
    }
  });

  let backend;
  let storage;
  let settings;
  try {
    // Before the backend loads: a job without a handler here must stop the worker at once.
    checkComputeJobs();
    // The parent validated the same environment; reading it again keeps one parser.
    settings = readWorkerSettings(process.env);
    backend = await selectBackend();
    if (needsGpuSmokeCheck(settings.deviceClass, backend)) {
      log(null, 'info', 'GPU smoke check: a matmul and one training step on the GPU backend');
      const smoke = await runGpuSmokeCheck(tfjsGpuProbe());
      log(null, 'info', 'GPU smoke check passed', { ...smoke });
    }
    storage = await storageFromEnv(process.env);
  } catch (error) {
    send({ type: 'startup-failed', error: serializeError(error, true) });
    process.exitCode = 1;
    process.disconnect();
    return;
  }
  context = {
    store: storage.store,
    runs: runRecordsOf(storage.store, settings.redisUrl, settings.queuePrefix),
    datasets: new DatasetCache(storage.store, settings.datasetCacheBytes),
    backend: { name: backend.name, kind: backend.kind, kernels: backend.kernels, detail: backend.detail },
    trainReplicas: settings.trainReplicas,
    dataThreads: settings.dataThreads,
    data: { ...settings.data, memoryBudgetBytes: settings.datasetCacheBytes },
    shardCaches: new Map(),
  };
  send({ type: 'ready', backend: context.backend });
  void drain();
}

main().catch((error: unknown) => {
  send({ type: 'startup-failed', error: serializeError(error, true) });
  process.exit(1);
});
