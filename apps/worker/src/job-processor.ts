import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import {
  generationOfShardJobId,
  handleShardFailure,
  jobCatalogue,
  parseJob,
  shardJobId,
  type JobName,
  type JobProducer,
  type QueueName,
  type RunRepository,
} from '@dinoq/jobs';
import { listCommitted, type ObjectStore } from '@dinoq/storage';
import { ComputeJobError, type ComputeClient } from './compute/compute-client';
import type { TrainShardResult } from './compute/handlers/train-shard';
import { MutexAbortedError, type DeviceMutex } from './device-mutex';
import { evaluateSweep } from './evaluate-sweep';
import type { Logger } from './logger';

export const SHUTDOWN_MESSAGE = 'worker shutting down';

export interface ProcessorDeps {
  mutex: DeviceMutex;
  compute: ComputeClient;
  producer: JobProducer;
  store: ObjectStore;
  runs: RunRepository;
  workerId: string;
  logger: Logger;
  /** Aborted when the worker shuts down: jobs still waiting for the device go back to the queue. */
  shutdown: AbortSignal;
  /** Called with the job being computed (null when the device is free), for heartbeats. */
  onCurrentJob(label: string | null): void;
}

function isJobName(name: string): name is JobName {
  return Object.prototype.hasOwnProperty.call(jobCatalogue, name);
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
 * payload, waits for the device, and hands the job to the compute process, so this event loop
 * only relays messages and keeps renewing job locks however long the computation takes.
 *
 * Why not BullMQ's sandboxed processors: they fork per Worker, i.e. one process per queue, and
 * those processes cannot share a device mutex, so a training shard and an evaluation could land on
 * one GPU at once; and a sandbox starts cold after a crash, while this single long-lived process
 * keeps the tfjs backend initialised and the decoded datasets cached from one job to the next.
 */
export function createJobProcessor(deps: ProcessorDeps) {
  const { logger } = deps;
  return async (job: Job, token?: string): Promise<unknown> => {
    const name = job.name;
    if (!isJobName(name))
      throw new UnrecoverableError(`no handler for job "${name}" on queue ${job.queueName}`);
    let data: unknown;
    try {
      data = parseJob(name, job.data);
    } catch (error) {
      throw new UnrecoverableError((error as Error).message);
    }
    const jobLog = logger.child({ jobId: job.id, job: name, queue: job.queueName });

    if (name === 'evaluate-sweep') {
      const result = await evaluateSweep(deps, parseJob('evaluate-sweep', data));
      jobLog.info({ enqueued: result.enqueued.map((entry) => entry.jobId) }, 'evaluate-sweep done');
      return result;
    }

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
    const progress = progressRelay(job, jobLog);
    try {
      deps.onCurrentJob(label);
      jobLog.info({ attempt: job.attemptsStarted }, 'job started');
      const result = await deps.compute.run(
        {
          name,
          data,
          jobId: String(job.id),
          queue: job.queueName,
          workerId: deps.workerId,
          attempt: job.attemptsStarted,
        },
        {
          onProgress: (value) => progress.push(value),
          onLog: (level, message, fields, toJob) => {
            jobLog[level]({ ...fields, source: 'compute' }, message);
            if (toJob) job.log(message).catch(() => undefined);
          },
        },
      );
      await progress.settle();
      if (name === 'train-shard') await enqueueNextShard(deps, job, result as TrainShardResult);
      jobLog.info('job done');
      return result;
    } catch (error) {
      await progress.settle();
      throw await failure(deps, job, name, error, jobLog);
    } finally {
      deps.onCurrentJob(null);
      release();
    }
  };
}

async function enqueueNextShard(deps: ProcessorDeps, job: Job, result: TrainShardResult): Promise<void> {
  const { next } = result;
  if (!next) return;
  const jobId = shardJobId(result.runId, next.generation, next.shard);
  await deps.producer.add(
    job.queueName as QueueName,
    'train-shard',
    { runId: result.runId, shard: next.shard, fromStep: next.fromStep, toStep: next.toStep },
    { jobId },
  );
  deps.logger.info({ runId: result.runId, jobId, queue: job.queueName }, 'next shard queued');
}

/**
 * Maps what went wrong to what BullMQ should do. When the shard job has no attempt left, the run
 * gets a new attempt of the shard within its run-level retry budget, or fails with the reason.
 */
async function failure(
  deps: ProcessorDeps,
  job: Job,
  name: JobName,
  error: unknown,
  jobLog: Logger,
): Promise<Error> {
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
  jobLog.warn({ err: mapped.message, finalAttempt }, 'job failed');
  if (name === 'train-shard' && finalAttempt) {
    await afterFinalShardFailure(deps, job, mapped, jobLog);
  }
  return mapped;
}

async function afterFinalShardFailure(
  deps: ProcessorDeps,
  job: Job,
  error: Error,
  jobLog: Logger,
): Promise<void> {
  const runId = (job.data as { runId: string }).runId;
  const generation = generationOfShardJobId(String(job.id));
  if (generation === null) return;
  try {
    const outcome = await handleShardFailure(
      {
        runs: deps.runs,
        committedSteps: (id) => listCommitted(deps.store, id),
        enqueue: async (queue, jobId, data) => {
          await deps.producer.add(queue, 'train-shard', data, { jobId });
        },
      },
      {
        runId,
        generation,
        reason: `shard job ${job.id} failed: ${error.message}`,
        unrecoverable: error instanceof UnrecoverableError,
      },
    );
    jobLog.warn(
      { runId, outcome: outcome.kind, ...(outcome.kind === 'retried' ? { next: outcome.job.jobId } : {}) },
      'run after the shard failed for good',
    );
  } catch (updateError) {
    jobLog.error(
      { err: (updateError as Error).message, runId },
      'could not record the shard failure on the run',
    );
  }
}
