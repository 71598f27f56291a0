import type { RunRecord, RoundProgress } from './run-record';

/*
 * DiLoCo rounds of a run (config.parallel): which steps a round covers and how many slices share
 * them. A round starts at a committed step; slice i of N trains its steps b + i, b + i + N, … up to
 * the round's end, and the round's merge commits the checkpoint at that end.
 */

export interface RoundPlan {
  fromStep: number;
  toStep: number;
  /** Slices that train this round: the run's slice count, fewer when the round has fewer steps. */
  slices: number;
}

type RoundRun = Pick<RunRecord, 'totalSteps' | 'slices' | 'config'>;

/** The round that starts at `fromStep` (a committed step, or 0), or null once every step is committed. */
export function roundAt(run: RoundRun, fromStep: number | null): RoundPlan | null {
  const start = fromStep ?? 0;
  if (start >= run.totalSteps) return null;
  const toStep = Math.min(start + run.slices * run.config.parallel.syncEverySteps, run.totalSteps);
  return { fromStep: start, toStep, slices: Math.min(run.slices, toStep - start) };
}

/** What run.json shows of a round that has just been planned. */
export function roundProgressOf(plan: RoundPlan, index: number): RoundProgress {
  return { index, fromStep: plan.fromStep, toStep: plan.toStep, slices: plan.slices, slicesDone: [] };
}

/** Whether a progress entry describes this round (same steps, same slice count). */
export function isSameRound(progress: RoundProgress | null, plan: RoundPlan): boolean {
  return (
    progress !== null &&
    progress.fromStep === plan.fromStep &&
    progress.toStep === plan.toStep &&
    progress.slices === plan.slices
  );
}
