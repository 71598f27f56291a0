import { UnrecoverableError } from 'bullmq';
import { generationOfShardJobId, handleShardFailure, shardJobId, type QueueName } from '@dinoq/jobs';
import { listCommitted } from '@dinoq/storage';
import type { ComputeResults } from './compute-jobs';
import type { WorkerStep } from './worker-jobs';

/*
 * The worker-process steps around a training shard: queue the next shard once one returns, and
 * start a new attempt of the run (or fail it) once a shard job has failed for good.
 */

export async function queueNextShard(
  { job, services, log }: WorkerStep<'train-shard'>,
  result: ComputeResults['train-shard'],
): Promise<void> {
  const { next } = result;
  if (!next) return;
  const jobId = shardJobId(result.runId, next.generation, next.shard);
  await services.producer.add(
    job.queueName as QueueName,
    'train-shard',
    { runId: result.runId, shard: next.shard, fromStep: next.fromStep, toStep: next.toStep },
    { jobId },
  );
  log.info({ runId: result.runId, jobId, queue: job.queueName }, 'next shard queued');
}

/** Gives the run a new attempt of the shard within its run-level retry budget, or fails it with the reason. */
export async function retryShardAfterFinalFailure(
  { job, payload, services, log }: WorkerStep<'train-shard'>,
  error: Error,
): Promise<void> {
  const { runId } = payload;
  const generation = generationOfShardJobId(String(job.id));
  if (generation === null) return;
  try {
    const outcome = await handleShardFailure(
      {
        runs: services.runs,
        committedSteps: (id) => listCommitted(services.store, id),
        enqueue: async (queue, jobId, data) => {
          await services.producer.add(queue, 'train-shard', data, { jobId });
        },
      },
      {
        runId,
        generation,
        reason: `shard job ${job.id} failed: ${error.message}`,
        unrecoverable: error instanceof UnrecoverableError,
      },
    );
    log.warn(
      { runId, outcome: outcome.kind, ...(outcome.kind === 'retried' ? { next: outcome.job.jobId } : {}) },
      'run after the shard failed for good',
    );
  } catch (updateError) {
    log.error(
      { err: (updateError as Error).message, runId },
      'could not record the shard failure on the run',
    );
  }
}
