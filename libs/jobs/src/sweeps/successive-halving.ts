import type { EarlyStopping } from './sweep-spec';

/*
 * Early stopping by successive halving (Jamieson & Talwalkar 2016) and its asynchronous form ASHA
 * (Li et al. 2020, arXiv 1810.05934), as pure functions of the rung results. Decisions are never
 * stored: every pass derives them again from the results in storage, so a restarted controller
 * reaches the same ones.
 */

/** Rung i of R sits at budget / eta^(R-1-i): the last rung is the full budget. */
export function rungFractions({ rungs, eta }: Pick<EarlyStopping, 'rungs' | 'eta'>): number[] {
  return Array.from({ length: rungs }, (_, i) => eta ** -(rungs - 1 - i));
}

/**
 * The steps at which a trial of `totalSteps` is evaluated, snapped to multiples of `commitEvery`
 * (the checkpoints a shard run commits) and ending at the last step. Null when two rungs would
 * fall on one checkpoint.
 */
export function rungSteps(
  totalSteps: number,
  commitEvery: number,
  stopping: Pick<EarlyStopping, 'rungs' | 'eta'>,
): number[] | null {
  const steps = rungFractions(stopping).map((fraction, i, all) =>
    i === all.length - 1
      ? totalSteps
      : Math.min(
          totalSteps,
          Math.max(commitEvery, Math.round((fraction * totalSteps) / commitEvery) * commitEvery),
        ),
  );
  return steps.every((step, i) => i === 0 || step > steps[i - 1]) ? steps : null;
}

export interface RungResult {
  /** Higher is better (a loss enters negated). */
  score: number;
  /** When the result was recorded (ISO 8601): the order in which ASHA saw results arrive. */
  at: string;
}

export interface TrialResults {
  trialId: string;
  /** Per rung: the result, or null while there is none. */
  results: (RungResult | null)[];
  /** The trial ended without reaching its next rung (its run failed, or was cancelled by hand). */
  ended: boolean;
}

/** Rank order: better score first; equal scores keep the trials' order. */
function byScore(a: { score: number; order: number }, b: { score: number; order: number }): number {
  return b.score - a.score || a.order - b.order;
}

/** How many of n results at a rung go on: the best 1/eta, at least one. */
const keepOf = (n: number, eta: number) => Math.max(1, Math.floor(n / eta));

/**
 * Successive halving: rung r is decided once every trial still in it has its result there (a
 * trial that ended without one drops out); the best `keepOf(n)` go on. Rungs are decided in order.
 */
function synchronousStops(trials: readonly TrialResults[], stopping: EarlyStopping): Map<string, number> {
  const stops = new Map<string, number>();
  for (let rung = 0; rung < stopping.rungs - 1; rung++) {
    const contenders = trials
      .map((trial, order) => ({ trial, order, result: trial.results[rung] ?? null }))
      .filter(({ trial, result }) => !stops.has(trial.trialId) && (result !== null || !trial.ended));
    if (contenders.some(({ result }) => result === null)) break;
    const ranked = contenders
      .map(({ trial, order, result }) => ({ trial, order, score: result!.score }))
      .sort(byScore);
    for (const { trial } of ranked.slice(keepOf(ranked.length, stopping.eta))) stops.set(trial.trialId, rung);
  }
  return stops;
}

/**
 * ASHA as a stopping rule: each result at rung r is ranked, when it arrives, against the results
 * that arrived at r before it (and itself); outside the best `keepOf(k)` of those k, the trial stops.
 */
function asynchronousStops(trials: readonly TrialResults[], stopping: EarlyStopping): Map<string, number> {
  const stops = new Map<string, number>();
  for (let rung = 0; rung < stopping.rungs - 1; rung++) {
    const arrived = trials
      .map((trial, order) => ({ trial, order, result: trial.results[rung] ?? null }))
      .filter(({ trial, result }) => result !== null && !stops.has(trial.trialId))
      .map(({ trial, order, result }) => ({ trial, order, score: result!.score, at: result!.at }))
      .sort((a, b) => a.at.localeCompare(b.at) || a.order - b.order);
    arrived.forEach((entry, i) => {
      const ranked = arrived.slice(0, i + 1).sort(byScore);
      if (ranked.indexOf(entry) >= keepOf(ranked.length, stopping.eta)) stops.set(entry.trial.trialId, rung);
    });
  }
  return stops;
}

/** The trials to stop, each with the rung that stopped it. */
export function stoppedTrials(trials: readonly TrialResults[], stopping: EarlyStopping): Map<string, number> {
  return stopping.mode === 'sync' ? synchronousStops(trials, stopping) : asynchronousStops(trials, stopping);
}

export interface BestTrial {
  trialId: string;
  rung: number;
  score: number;
}

/** The best result at the highest rung any trial has reached (ties: the earlier trial). */
export function bestTrial(trials: readonly TrialResults[]): BestTrial | null {
  for (let rung = Math.max(0, ...trials.map((t) => t.results.length)) - 1; rung >= 0; rung--) {
    const ranked = trials
      .map((trial, order) => ({ trial, order, result: trial.results[rung] ?? null }))
      .filter(({ result }) => result !== null)
      .map(({ trial, order, result }) => ({ trialId: trial.trialId, order, score: result!.score }))
      .sort(byScore);
    if (ranked.length > 0) return { trialId: ranked[0].trialId, rung, score: ranked[0].score };
  }
  return null;
}
