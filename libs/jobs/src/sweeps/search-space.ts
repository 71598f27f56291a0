import {
  ConfigError,
  configPathProblem,
  mergeConfig,
  overrideAt,
  resolveRunConfig,
  trainStepFlops,
  type PresetName,
} from '@dinoq/config';
import {
  MAX_SWEEP_TRIALS,
  type Dimension,
  type RangeDimension,
  type SearchSpace,
  type SweepBudget,
  type TrialPoint,
} from './sweep-spec';

/*
 * The trials of a search space: every grid point, or seeded random samples. Pure functions, so the
 * same request always yields the same trials in the same order.
 */

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const isRange = (dimension: Dimension): dimension is RangeDimension => 'min' in dimension;

/** A position u in [0, 1] of a range, on its linear or log scale, rounded when integer; exact at the ends. */
function rangeValue(range: RangeDimension, u: number): number {
  const value =
    u <= 0
      ? range.min
      : u >= 1
        ? range.max
        : range.log
          ? Math.exp(Math.log(range.min) + u * (Math.log(range.max) - Math.log(range.min)))
          : range.min + u * (range.max - range.min);
  return range.integer ? Math.round(value) : value;
}

/** A grid dimension's values: its list, or `count` points from min to max (duplicates dropped). */
function gridValues(path: string, dimension: Dimension): unknown[] {
  if (!isRange(dimension)) return dimension.values;
  if (dimension.count === undefined)
    throw new SearchSpaceError([`space.parameters.${path}.count: a range needs a count in a grid search`]);
  const values = Array.from({ length: dimension.count }, (_, i) =>
    rangeValue(dimension, i / (dimension.count! - 1)),
  );
  return [...new Set(values)];
}

/** Every combination, the first parameter varying slowest. */
function gridPoints(space: SearchSpace): TrialPoint[] {
  let points: TrialPoint[] = [{}];
  for (const [path, dimension] of Object.entries(space.parameters)) {
    const values = gridValues(path, dimension);
    points = points.flatMap((point) => values.map((value) => ({ ...point, [path]: value })));
    if (points.length > MAX_SWEEP_TRIALS)
      throw new SearchSpaceError([`space: the grid has more than ${MAX_SWEEP_TRIALS} points`]);
  }
  return points;
}

function randomPoints(space: SearchSpace, trials: number): TrialPoint[] {
  const uniform = seededUniform(space.seed);
  return Array.from({ length: trials }, () => {
    const point: TrialPoint = {};
    for (const [path, dimension] of Object.entries(space.parameters)) {
      point[path] = isRange(dimension)
        ? rangeValue(dimension, uniform())
        : dimension.values[Math.floor(uniform() * dimension.values.length)];
    }
    return point;
  });
}

/** A search space that names unknown config paths or values the run schema refuses. */
export class SearchSpaceError extends Error {
  constructor(readonly reasons: string[]) {
    super(`invalid search space: ${reasons.join('; ')}`);
    this.name = 'SearchSpaceError';
  }
}

/**
 * The trials' points: a grid's combinations (at most `trials` of them when given) or `trials`
 * random samples (required for a random search).
 */
export function expandSearchSpace(space: SearchSpace, trials: number | undefined): TrialPoint[] {
  if (space.kind === 'grid') {
    const points = gridPoints(space);
    return trials === undefined ? points : points.slice(0, trials);
  }
  if (trials === undefined)
    throw new SearchSpaceError(['budget.trials: a random search needs a number of trials']);
  return randomPoints(space, trials);
}

/** The base overrides with a point's values set at their paths. */
export function overridesOf(base: Record<string, unknown>, point: TrialPoint): Record<string, unknown> {
  return Object.entries(point).reduce(
    (overrides, [path, value]) => mergeConfig(overrides, overrideAt(path, value)),
    base,
  );
}

/**
 * Every problem of a search space before anything is created: unknown config paths, and values the
 * run schema refuses at a range's bounds or at any trial point. Each reason starts with
 * `space.parameters.<path>`; a point whose problem lies elsewhere names the config field.
 */
export function searchSpaceProblems(
  space: SearchSpace,
  points: readonly TrialPoint[],
  preset: PresetName | undefined,
  base: Record<string, unknown>,
): string[] {
  const problems = new Set<string>();
  for (const path of Object.keys(space.parameters)) {
    const problem = configPathProblem(path);
    if (problem) problems.add(`space.parameters.${path}: ${problem}`);
  }
  if (problems.size > 0) return [...problems];
  const bounds: TrialPoint[] = Object.entries(space.parameters).flatMap(([path, dimension]) =>
    isRange(dimension) ? [{ [path]: rangeValue(dimension, 0) }, { [path]: rangeValue(dimension, 1) }] : [],
  );
  for (const point of [...bounds, ...points]) {
    try {
      resolveRunConfig(preset, overridesOf(base, point));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const reason of error.reasons) problems.add(reasonForPoint(reason, point));
    }
  }
  return [...problems];
}

/** "optim.lr: too big" becomes "space.parameters.optim.lr = 5: too big" when the point set it. */
function reasonForPoint(reason: string, point: TrialPoint): string {
  const field = reason.slice(0, reason.indexOf(':'));
  const path = Object.keys(point).find(
    (p) => field === p || field.startsWith(`${p}.`) || p.startsWith(`${field}.`),
  );
  if (path === undefined) return `${reason} (at ${JSON.stringify(point)})`;
  return `space.parameters.${path} = ${JSON.stringify(point[path])}: ${reason}`;
}

/**
 * A trial's run-config overrides: the base, the point, and the budget as `train.steps` (images
 * become steps at the trial's own batch size, so trials of different batch sizes see as many
 * images; minutes become steps at the budget's training speed and the trial's own FLOPs per step,
 * so trials of different sizes train as long).
 */
export function trialOverrides(
  request: { preset?: string; config?: Record<string, unknown>; budget: SweepBudget },
  point: TrialPoint,
): Record<string, unknown> {
  const overrides = overridesOf(request.config ?? {}, point);
  return mergeConfig(overrides, { train: { steps: budgetSteps(request.budget, request.preset, overrides) } });
}

function budgetSteps(
  budget: SweepBudget,
  preset: string | undefined,
  overrides: Record<string, unknown>,
): number {
  if (budget.steps !== undefined) return budget.steps;
  const config = resolveRunConfig(preset as PresetName | undefined, overrides);
  if (budget.images !== undefined) return Math.ceil(budget.images / config.train.batchSize);
  if (budget.minutes === undefined || budget.flopsPerSecond === undefined)
    throw new Error('budget: minutes need flopsPerSecond to become steps');
  return Math.max(1, Math.floor((budget.minutes * 60 * budget.flopsPerSecond) / trainStepFlops(config)));
}
