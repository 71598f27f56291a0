import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { parseJob, type JobName, type JobPayload } from '@dinoq/jobs';
import { ComputeJobError, type ComputeClient } from './compute/compute-client';
import { MutexAbortedError, type DeviceMutex } from './device-mutex';
import type { Logger } from './logger';
import type {
  ComputeJobSteps,
  ComputeResult,
  WorkerJob,
  WorkerJobRegistry,
  WorkerServices,
  WorkerStep,
} from './worker-jobs';

export const SHUTDOWN_MESSAGE = 'worker shutting down';

export interface ProcessorDeps extends WorkerServices {
  /** The worker process's half of the job registry, checked against the worker's queues at start. */
  jobs: WorkerJobRegistry;
  mutex: DeviceMutex;
  compute: ComputeClient;
  workerId: string;
  /** Aborted when the worker shuts down: jobs still waiting for the device go back to the queue. */
  shutdown: AbortSignal;
  /** Called with the job being computed (null when the device is free), for heartbeats. */
  onCurrentJob(label: string | null): void;
  /** The training speed a training job measured (its result's trainFlopsPerSecond), to announce. */
  onTrainSpeed?(flopsPerSecond: number): void;
}

/** Coalesces progress updates: one Redis write in flight, and only the newest value waits behind it. */
function progressRelay(job: Job, logger: Logger) {
  let inFlight: Promise<void> | null = null;
  let queued: Record<string, unknown> | null = null;
  const flush = (): void => {
    if (inFlight || queued === null) return;
    const value = queued;
    queued = null;
    inFlight = job
      .updateProgress(value)
      .catch((error: Error) => logger.debug({ err: error.message }, 'progress update failed'))
      .finally(() => {
        inFlight = null;
        flush();
      });
  };
  return {
    push(progress: Record<string, unknown>): void {
      queued = progress;
      flush();
    },
    async settle(): Promise<void> {
      while (inFlight) await inFlight;
    },
  };
}

/**
 * The processor every queue's BullMQ Worker runs inline in the worker process. It validates the
 * payload and dispatches the job through the registry: an inline job runs here at once; any other
 * waits for the device and goes to the compute process, so this event loop only relays messages
 * and keeps renewing job locks however long the computation takes.
 *
 * Why not BullMQ's sandboxed processors: they fork per Worker, i.e. one process per queue, and
 * those processes cannot share a device mutex, so a training shard and an evaluation could land on
 * one GPU at once; and a sandbox starts cold after a crash, while this single long-lived process
 * keeps the tfjs backend initialised and the decoded datasets cached from one job to the next.
 */
export function createJobProcessor(deps: ProcessorDeps) {
  return async (job: Job, token?: string): Promise<unknown> => {
    const name = job.name;
    if (!deps.jobs.has(name))
      throw new UnrecoverableError(`no handler for job "${name}" on queue ${job.queueName}`);
    return processJob(deps, job, token, name, parsePayload(name, job.data));
  };
}

/** A payload that does not match the catalogue fails the job for good: no retry can fix it. */
function parsePayload<N extends JobName>(name: N, data: unknown): JobPayload<N> {
  try {
    return parseJob(name, data);
  } catch (error) {
    throw new UnrecoverableError((error as Error).message);
  }
}

async function processJob<N extends JobName>(
  deps: ProcessorDeps,
  job: Job,
  token: string | undefined,
  name: N,
  payload: JobPayload<N>,
): Promise<unknown> {
  const registration: WorkerJob<N> = deps.jobs.get(name);
  const log = deps.logger.child({ jobId: job.id, job: name, queue: job.queueName });
  const step: WorkerStep<N> = { job, payload, services: deps, log };
  if (registration.runs === 'inline') return registration.handler(step);
  return computeOnDevice(deps, name, registration, step, token);
}

/** Waits for the device, runs the job in the compute process, then its `afterCompute` step. */
async function computeOnDevice<N extends JobName>(
  deps: ProcessorDeps,
  name: N,
  registration: ComputeJobSteps<N>,
  step: WorkerStep<N>,
  token: string | undefined,
): Promise<unknown> {
  const { job, log } = step;
  const label = `${job.queueName}/${job.id}`;
  let release: () => void;
  try {
    release = await deps.mutex.acquire(label, deps.shutdown);
  } catch (error) {
    if (error instanceof MutexAbortedError) {
      // Never started: hand it back untouched rather than spend one of its attempts.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    throw error;
  }
  const progress = progressRelay(job, log);
  try {
    deps.onCurrentJob(label);
    log.info({ attempt: job.attemptsStarted }, 'job started');
    const result = await deps.compute.run(
      {
        name,
        data: step.payload,
        jobId: String(job.id),
        queue: job.queueName,
        workerId: deps.workerId,
        attempt: job.attemptsStarted,
      },
      {
        onProgress: (value) => progress.push(value),
        onLog: (level, message, fields, toJob) => {
          log[level]({ ...fields, source: 'compute' }, message);
          if (toJob) job.log(message).catch(() => undefined);
        },
      },
    );
    await progress.settle();
    // The compute process returns what its handler for this job returned (ComputeResults).
    await registration.afterCompute?.(step, result as ComputeResult<N>);
    const speed = (result as { trainFlopsPerSecond?: unknown } | null)?.trainFlopsPerSecond;
    if (typeof speed === 'number') deps.onTrainSpeed?.(speed);
    log.info('job done');
    return result;
  } catch (error) {
    await progress.settle();
    throw await failure(registration, step, error);
  } finally {
    deps.onCurrentJob(null);
    release();
  }
}

/**
 * Maps what went wrong to what BullMQ should do. When the job has no attempt left, the job's
 * `afterFinalFailure` step runs (a training shard's run gets a new attempt of the shard within
 * its run-level retry budget, or fails with the reason).
 */
async function failure<N extends JobName>(
  registration: ComputeJobSteps<N>,
  step: WorkerStep<N>,
  error: unknown,
): Promise<Error> {
  const { job, log } = step;
  let mapped: Error;
  if (error instanceof ComputeJobError && error.unrecoverable) {
    mapped = new UnrecoverableError(error.message);
  } else if (error instanceof ComputeJobError && error.abandoned) {
    mapped = new Error(
      `${SHUTDOWN_MESSAGE}: job abandoned before it finished; it resumes from the last commit`,
    );
  } else {
    mapped = error instanceof Error ? error : new Error(String(error));
  }
  const finalAttempt =
    mapped instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  log.warn({ err: mapped.message, finalAttempt }, 'job failed');
  if (finalAttempt) await registration.afterFinalFailure?.(step, mapped);
  return mapped;
}
