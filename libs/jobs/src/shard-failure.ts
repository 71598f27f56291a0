import { trainQueueFor, type QueueName } from './queues';
import type { MergeRoundJob, TrainShardJob, TrainSliceJob } from './payloads';
import { roundAt } from './rounds';
import {
  nextShard,
  roundJobId,
  shardJobId,
  shardRange,
  sliceJobId,
  type RunRecord,
  type RunRepository,
} from './run-record';

/*
 * What happens to a run when the job of its next shard (or its round) has ended without committing, for good:
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

/**
 * The work that continues a run from its newest commit: the next shard's job, or the next round's
 * flow (a merge job whose children are the slices' jobs). Ids are deterministic, so adding the same
 * continuation twice adds nothing.
 */
export type Continuation =
  | { kind: 'shard'; queue: QueueName; jobId: string; data: TrainShardJob }
  | {
      kind: 'round';
      queue: QueueName;
      /** The merge job's id: the flow's parent. */
      jobId: string;
      data: MergeRoundJob;
      slices: { jobId: string; data: TrainSliceJob }[];
    };

export type ShardFailureOutcome =
  | { kind: 'retried'; run: RunRecord; job: Continuation }
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

/** The work that continues a run from its newest commit under its current generation (null: finished). */
export function continuationJob(run: RunRecord, committedSteps: number[]): Continuation | null {
  const from = lastCommittedStep(run, committedSteps);
  return run.rounds ? roundContinuation(run, from) : shardContinuation(run, from);
}

function shardContinuation(run: RunRecord, from: number | null): Continuation | null {
  const shard = nextShard(run, from);
  if (shard === null) return null;
  return {
    kind: 'shard',
    queue: trainQueueFor(run.device),
    jobId: shardJobId(run.runId, run.generation, shard),
    data: { runId: run.runId, shard, ...shardRange(run, shard) },
  };
}

export type RoundContinuation = Extract<Continuation, { kind: 'round' }>;

/** The flow of the round that starts at `from`, with the run's current slice count and generation. */
export function roundContinuation(run: RunRecord, from: number | null): RoundContinuation | null {
  const plan = roundAt(run, from);
  if (plan === null) return null;
  const data: MergeRoundJob = { runId: run.runId, ...plan };
  return {
    kind: 'round',
    queue: trainQueueFor(run.device),
    jobId: roundJobId(run.runId, run.generation, plan.fromStep),
    data,
    slices: Array.from({ length: plan.slices }, (_, slice) => ({
      jobId: sliceJobId(run.runId, run.generation, plan.fromStep, plan.slices, slice),
      data: { ...data, slice },
    })),
  };
}

export interface ShardFailureDeps {
  runs: Pick<RunRepository, 'update'>;
  committedSteps(runId: string): Promise<number[]>;
  /** Adds the work under its ids; adding ids that exist must be a no-op (BullMQ's behaviour). */
  enqueue(work: Continuation): Promise<void>;
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
  await deps.enqueue(job);
  return { kind: 'retried', run, job };
}
