import { trainQueueFor, type QueueName } from './queues';
import type { TrainShardJob } from './payloads';
import { nextShard, shardJobId, shardRange, type RunRecord, type RunRepository } from './run-record';

/*
 * What happens to a run when the job of its next shard has ended without committing, for good:
 * BullMQ spent its attempts (errors, or a worker killed while holding the job more often than the
 * stalled limit allows), or the error can never succeed. The run then either continues with a new
 * attempt of the shard under the next generation, within its run-level retry budget, or fails
 * with the reason. Both the worker that saw the failure and the API's reconciliation apply this;
 * the decision is a compare-and-swap on run.json keyed on the failed job's generation, so however
 * many of them act on one failure, exactly one new attempt is made.
 */

export interface ShardFailure {
  runId: string;
  /** The generation of the failed job's id: a failure of an earlier attempt changes nothing. */
  generation: number;
  reason: string;
  /** Errors that no retry can fix (a corrupt dataset, a NaN): fail at once. */
  unrecoverable: boolean;
}

export type ShardFailureOutcome =
  | { kind: 'retried'; run: RunRecord; job: { queue: QueueName; jobId: string; data: TrainShardJob } }
  | { kind: 'failed'; run: RunRecord }
  /** The run had moved on (another attempt, a cancel, a finish): nothing to do. */
  | { kind: 'unchanged'; run: RunRecord };

const isActive = (run: RunRecord) => run.status === 'queued' || run.status === 'running';

/** The change to run.json for a failure, or null when the failure no longer concerns the run. */
export function shardFailureChange(run: RunRecord, failure: ShardFailure): Partial<RunRecord> | null {
  if (!isActive(run) || run.generation !== failure.generation) return null;
  if (run.cancelRequested) return { status: 'cancelled' };
  if (failure.unrecoverable || run.retries >= run.retryBudget) {
    const spent = failure.unrecoverable
      ? ''
      : ` (run-level retries spent: ${run.retries} of ${run.retryBudget})`;
    return { status: 'failed', error: `${failure.reason}${spent}` };
  }
  return {
    status: 'queued',
    generation: run.generation + 1,
    retries: run.retries + 1,
    lastRetryReason: failure.reason,
    error: null,
  };
}

/** The newest committed step: the checkpoint store's COMMITTED records win over a stale run.json. */
export function lastCommittedStep(run: RunRecord, committedSteps: number[]): number | null {
  const stored = committedSteps.length > 0 ? committedSteps[committedSteps.length - 1] : null;
  if (stored === null) return run.lastCommittedStep;
  return run.lastCommittedStep === null ? stored : Math.max(stored, run.lastCommittedStep);
}

/** The job that continues a run from its newest commit under its current generation (null: finished). */
export function continuationJob(
  run: RunRecord,
  committedSteps: number[],
): { queue: QueueName; jobId: string; data: TrainShardJob } | null {
  const shard = nextShard(run, lastCommittedStep(run, committedSteps));
  if (shard === null) return null;
  return {
    queue: trainQueueFor(run.device),
    jobId: shardJobId(run.runId, run.generation, shard),
    data: { runId: run.runId, shard, ...shardRange(run, shard) },
  };
}

export interface ShardFailureDeps {
  runs: Pick<RunRepository, 'update'>;
  committedSteps(runId: string): Promise<number[]>;
  /** Adds a job under its id; adding an id that exists must be a no-op (BullMQ's behaviour). */
  enqueue(queue: QueueName, jobId: string, data: TrainShardJob): Promise<void>;
}

/** Applies `shardFailureChange` and, when it made a new attempt, queues that attempt's job. */
export async function handleShardFailure(
  deps: ShardFailureDeps,
  failure: ShardFailure,
): Promise<ShardFailureOutcome> {
  let applied: Partial<RunRecord> | null = null;
  const run = await deps.runs.update(failure.runId, (current) => {
    applied = shardFailureChange(current, failure);
    return applied;
  });
  if (applied === null) return { kind: 'unchanged', run };
  if (run.status !== 'queued') return { kind: 'failed', run };
  const job = continuationJob(run, await deps.committedSteps(failure.runId));
  if (!job) return { kind: 'unchanged', run };
  await deps.enqueue(job.queue, job.jobId, job.data);
  return { kind: 'retried', run, job };
}
