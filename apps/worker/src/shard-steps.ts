import { UnrecoverableError } from 'bullmq';
import { generationOfJobId, handleShardFailure, shardJobId, type QueueName } from '@dinoq/jobs';
import { listCommitted } from '@dinoq/storage';
import type { ComputeResults } from './compute-jobs';
import { describeSlice } from './compute/handlers/train-slice';
import type { WorkerStep } from './worker-jobs';

/*
 * The worker-process steps around a run's training jobs: queue the next shard once one returns,
 * queue the next round's flow once a merge returns, and start a new attempt of the run (or fail
 * it) once one of its training jobs has failed for good.
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

export async function queueNextRound(
  { services, log }: WorkerStep<'merge-round'>,
  result: ComputeResults['merge-round'],
): Promise<void> {
  const { next } = result;
  if (!next) return;
  await services.producer.addContinuation(next);
  log.info(
    { runId: result.runId, jobId: next.jobId, slices: next.slices.length, queue: next.queue },
    'next round queued',
  );
}

type RunJobName = 'train-shard' | 'train-slice' | 'merge-round';

/** What failed, in the words the run's error shows. */
function describeJob(step: WorkerStep<RunJobName>): string {
  const { job, payload } = step;
  if ('shard' in payload) return `shard job ${job.id}`;
  if ('slice' in payload) return `${describeSlice(payload)} (job ${job.id})`;
  return `merge of round ${payload.fromStep}..${payload.toStep} (job ${job.id})`;
}

/** Gives the run a new attempt within its run-level retry budget, or fails it with the reason. */
export async function retryRunAfterFinalFailure(step: WorkerStep<RunJobName>, error: Error): Promise<void> {
  const { job, payload, services, log } = step;
  const { runId } = payload;
  const generation = generationOfJobId(String(job.id));
  if (generation === null) return;
  try {
    const outcome = await handleShardFailure(
      {
        runs: services.runs,
        committedSteps: (id) => listCommitted(services.store, id),
        enqueue: async (work) => {
          await services.producer.addContinuation(work);
        },
      },
      {
        runId,
        generation,
        reason: `${describeJob(step)} failed: ${error.message}`,
        unrecoverable: error instanceof UnrecoverableError,
      },
    );
    log.warn(
      { runId, outcome: outcome.kind, ...(outcome.kind === 'retried' ? { next: outcome.job.jobId } : {}) },
      'run after its job failed for good',
    );
  } catch (updateError) {
    log.error({ err: (updateError as Error).message, runId }, 'could not record the job failure on the run');
  }
}
