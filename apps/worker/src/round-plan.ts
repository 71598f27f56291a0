import {
  isSameRound,
  roundAt,
  roundProgressOf,
  type MergeRoundJob,
  type RunRecord,
  type TrainSliceJob,
} from '@dinoq/jobs';
import { isActive, withCommittedStep, type RunChange } from './shard-plan';

/*
 * What the jobs of a DiLoCo round do, decided from the run record, the newest COMMITTED checkpoint
 * and the slices' committed results alone, so that a retried, duplicated or re-created job (after a
 * Redis wipe) ends in the same state as the first. A round starts at the newest commit; its merge
 * commits the checkpoint at its end.
 */

type PlanRun = Pick<RunRecord, 'status' | 'cancelRequested' | 'totalSteps'>;

export type RoundJobPlan<Work> =
  /** Cancellation was asked for: mark the run cancelled, do nothing else. */
  | { kind: 'cancel' }
  /** The job no longer concerns the run (stopped, merged already, or a round that is not current). */
  | { kind: 'skip'; reason: string }
  /** Its result is committed already: only make sure the record and the queue moved on. */
  | { kind: 'done' }
  | Work;

export type SlicePlan = RoundJobPlan<{ kind: 'train'; resumeFrom: number | null }>;
export type MergePlan = RoundJobPlan<{ kind: 'merge'; startFrom: number | null }>;

function checkRound(run: PlanRun, job: MergeRoundJob): void {
  if (job.toStep > run.totalSteps)
    throw new Error(`round ${job.fromStep}..${job.toStep} ends past the run's ${run.totalSteps} steps`);
  if (job.fromStep >= job.toStep)
    throw new Error(`round fromStep ${job.fromStep} must be below toStep ${job.toStep}`);
  if (job.slices > job.toStep - job.fromStep)
    throw new Error(`round ${job.fromStep}..${job.toStep} is too short for ${job.slices} slices`);
}

/** What stops any job of a round before its own work: a cancel, a stopped run, a round not current. */
function stopped(run: PlanRun): RoundJobPlan<never> | null {
  if (run.cancelRequested) return { kind: 'cancel' };
  if (run.status === 'failed' || run.status === 'cancelled')
    return { kind: 'skip', reason: `run is ${run.status}` };
  return null;
}

function notCurrent(job: MergeRoundJob, latest: number | null): string | null {
  const start = latest ?? 0;
  return start === job.fromStep
    ? null
    : `the round starts at step ${job.fromStep}, the newest commit is ${latest ?? 'none'}`;
}

export function planSlice(
  run: PlanRun,
  job: TrainSliceJob,
  latest: number | null,
  resultCommitted: boolean,
): SlicePlan {
  checkRound(run, job);
  const stop = stopped(run);
  if (stop) return stop;
  if (latest !== null && latest >= job.toStep) return { kind: 'skip', reason: 'the round is merged already' };
  const stale = notCurrent(job, latest);
  if (stale) return { kind: 'skip', reason: stale };
  if (resultCommitted) return { kind: 'done' };
  return { kind: 'train', resumeFrom: latest };
}

export function planMerge(run: PlanRun, job: MergeRoundJob, latest: number | null): MergePlan {
  checkRound(run, job);
  if (latest !== null && latest >= job.toStep) return { kind: 'done' };
  const stop = stopped(run);
  if (stop) return stop;
  const stale = notCurrent(job, latest);
  if (stale) return { kind: 'skip', reason: stale };
  return { kind: 'merge', startFrom: latest };
}

/*
 * The changes round jobs make to run.json, as pure functions of the record they read (applied by
 * the repository's compare-and-swap, maybe more than once; null writes nothing).
 */

/** A slice committed its result: the round in flight lists it, with the slice's last metrics line. */
export function recordSliceDone(
  job: TrainSliceJob,
  latestMetrics: Record<string, unknown> | null,
): RunChange {
  return (run) => {
    const round = run.round;
    if (!round || !isSameRound(round, job) || round.slicesDone.includes(job.slice)) {
      return latestMetrics ? { latestMetrics: { ...latestMetrics } } : null;
    }
    return {
      round: { ...round, slicesDone: [...round.slicesDone, job.slice].sort((a, b) => a - b) },
      ...(latestMetrics ? { latestMetrics: { ...latestMetrics } } : {}),
    };
  };
}

/**
 * The round's merge is committed at `step`: the record lists it, and shows the next round (with the
 * run's slice count now, which a resize may have changed) or the finished run.
 */
export function recordRoundCommit(
  step: number,
  workerId: string,
  backend: string,
  /** Steps storage holds as committed, which a record written before a crash may lack. */
  stored: readonly number[] = [],
): RunChange {
  return (run) => {
    const finished = step >= run.totalSteps;
    const active = isActive(run.status);
    const next = active && !finished && !run.cancelRequested ? roundAt(run, step) : null;
    const mergedBefore = run.committedSteps.filter((s) => s < step).length;
    return {
      lastCommittedStep: Math.max(run.lastCommittedStep ?? 0, step),
      committedSteps: [...stored, step].reduce(withCommittedStep, run.committedSteps),
      round: next ? roundProgressOf(next, mergedBefore + 1) : null,
      workerId,
      backend,
      status: !active ? run.status : finished ? 'completed' : run.cancelRequested ? 'cancelled' : 'running',
      error: null,
    };
  };
}
