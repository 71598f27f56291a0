import { nextShard, shardRange, type RunRecord, type RunStatus, type TrainShardJob } from '@dinoq/jobs';

/*
 * What a training-shard job does, decided from the run record and the newest COMMITTED checkpoint
 * alone. Storage is the truth: a job may be a retry, a duplicate re-enqueued after a Redis wipe, or
 * a leftover of an earlier attempt, and each of those must end in the same state.
 */

type PlanRun = Pick<RunRecord, 'status' | 'cancelRequested' | 'totalSteps' | 'stepsPerShard' | 'generation'>;

/** The shard job that continues a run, with the generation its deterministic job id carries. */
export interface FollowUpShard {
  shard: number;
  fromStep: number;
  toStep: number;
  generation: number;
}

export type ShardPlan =
  /** Cancellation was asked for: mark the run cancelled, train nothing, queue nothing. */
  | { kind: 'cancel' }
  /** The run is finished or stopped; a stray job for it does nothing. */
  | { kind: 'skip'; reason: string }
  /** Already committed up to (or past) this shard's end: only make sure the run moves on. */
  | { kind: 'done'; committedStep: number; status: RunStatus; next: FollowUpShard | null }
  /**
   * Train from `startStep` (the newest commit, or 0 from the seed) up to `toStep`. A retried shard
   * starts from the newest commit, which is normally its own `fromStep`.
   */
  | { kind: 'train'; resumeFrom: number | null; startStep: number; toStep: number; gap: boolean };

export function planShard(run: PlanRun, job: TrainShardJob, latestCommitted: number | null): ShardPlan {
  if (job.toStep > run.totalSteps) {
    throw new Error(
      `train-shard ${job.shard}: toStep ${job.toStep} is past the run's ${run.totalSteps} steps`,
    );
  }
  if (job.fromStep >= job.toStep) {
    throw new Error(`train-shard ${job.shard}: fromStep ${job.fromStep} must be below toStep ${job.toStep}`);
  }
  if (run.cancelRequested) return { kind: 'cancel' };
  if (run.status === 'failed' || run.status === 'cancelled') {
    return { kind: 'skip', reason: `run is ${run.status}` };
  }
  if (latestCommitted !== null && latestCommitted >= job.toStep) {
    const { status, next } = afterCommit(run, latestCommitted);
    return { kind: 'done', committedStep: latestCommitted, status, next };
  }
  if (run.status === 'completed') return { kind: 'skip', reason: 'run is completed' };
  const startStep = latestCommitted ?? 0;
  return {
    kind: 'train',
    resumeFrom: latestCommitted,
    startStep,
    toStep: job.toStep,
    // Steps before fromStep were never committed: this shard trains them too rather than stall the run.
    gap: startStep < job.fromStep,
  };
}

/** The run's state once `committedStep` is committed: finished, or which shard comes next. */
export function afterCommit(
  run: Pick<PlanRun, 'cancelRequested' | 'totalSteps' | 'stepsPerShard' | 'generation'>,
  committedStep: number,
): { status: RunStatus; next: FollowUpShard | null } {
  const shard = nextShard(run, committedStep);
  if (shard === null) return { status: 'completed', next: null };
  if (run.cancelRequested) return { status: 'cancelled', next: null };
  return { status: 'running', next: { shard, ...shardRange(run, shard), generation: run.generation } };
}

/** Adds a step to an ascending, duplicate-free list. */
export function withCommittedStep(steps: readonly number[], step: number): number[] {
  return [...new Set([...steps, step])].sort((a, b) => a - b);
}

/*
 * The changes a shard makes to run.json, as pure functions of the record it reads. They go through
 * `RunRepository.update`, a compare-and-swap that may apply them several times; null writes nothing.
 */
export type RunChange = (run: RunRecord) => Partial<RunRecord> | null;

export const isActive = (status: RunStatus) => status === 'queued' || status === 'running';

/** Cancellation asked for before the shard started: an active run stops, a stopped one stays. */
export const cancelRun: RunChange = (run) => (isActive(run.status) ? { status: 'cancelled' } : null);

/**
 * A worker takes the run over: queued becomes running, and the record names who trains it on
 * what. Null when it says so already, which keeps the API's writers (cancel, resume) from retrying
 * against a write that changes nothing.
 */
export function claimRun(workerId: string, backend: string): RunChange {
  return (run) =>
    run.status === 'queued' || run.workerId !== workerId || run.backend !== backend
      ? { status: run.status === 'queued' ? 'running' : run.status, workerId, backend }
      : null;
}

/** Storage already holds the shard's commit (and maybe later ones): the record catches up with it. */
export function catchUpWithCommits(
  plan: Extract<ShardPlan, { kind: 'done' }>,
  committedSteps: readonly number[],
): RunChange {
  return (run) => ({
    lastCommittedStep: Math.max(run.lastCommittedStep ?? 0, plan.committedStep),
    committedSteps: committedSteps.reduce(withCommittedStep, run.committedSteps),
    status: isActive(run.status) ? plan.status : run.status,
  });
}

/** The shard committed `step`: the record lists it, with the shard's last metrics line. */
export function recordCommit(
  step: number,
  latestMetrics: Record<string, unknown>,
  workerId: string,
  backend: string,
): RunChange {
  return (run) => ({
    lastCommittedStep: Math.max(run.lastCommittedStep ?? 0, step),
    committedSteps: withCommittedStep(run.committedSteps, step),
    latestMetrics: { ...latestMetrics },
    backend,
    workerId,
    status: isActive(run.status) ? afterCommit(run, step).status : run.status,
    error: null,
  });
}

/** An error no retry can fix (a non-finite loss): the run fails with the reason. */
export function failRun(error: string, workerId: string): RunChange {
  return () => ({ status: 'failed', error, workerId });
}
