import { resolveRunConfig, trainStepFlops } from '@dinoq/config';
import {
  SearchSpaceError,
  bestTrial,
  deriveSweep,
  expandSearchSpace,
  rungSteps,
  searchSpaceProblems,
  searchSpaceSchema,
  stoppedTrials,
  sweepBudgetSchema,
  sweepRecordSchema,
  trialOverrides,
  type RungObservation,
  type TrialResults,
} from '../src';

const space = (input: unknown) => searchSpaceSchema.parse(input);
const at = (second: number) => `2025-01-01T00:00:${String(second).padStart(2, '0')}.000Z`;
const trial = (
  trialId: string,
  scores: (number | null)[],
  ended = false,
  seconds = [0, 0],
): TrialResults => ({
  trialId,
  results: scores.map((score, rung) => (score === null ? null : { score, at: at(seconds[rung] ?? 0) })),
  ended,
});

describe('search spaces', () => {
  it('expands a grid, the first path varying slowest, with log-spaced ranges', () => {
    const points = expandSearchSpace(
      space({
        kind: 'grid',
        parameters: {
          'optim.lr': { min: 1e-4, max: 1e-2, log: true, count: 3 },
          'train.batchSize': { values: [32, 64] },
        },
      }),
      undefined,
    );
    expect(points.map((p) => p['train.batchSize'])).toEqual([32, 64, 32, 64, 32, 64]);
    expect(points.map((p) => p['optim.lr'])).toEqual([
      1e-4,
      1e-4,
      expect.closeTo(1e-3, 12),
      expect.closeTo(1e-3, 12),
      1e-2,
      1e-2,
    ]);
    expect(
      expandSearchSpace(space({ kind: 'grid', parameters: { 'optim.lr': { values: [1, 2, 3] } } }), 2),
    ).toHaveLength(2);
  });

  it('draws the same random trials for the same seed, within the bounds, whole where asked', () => {
    const random = space({
      kind: 'random',
      seed: 7,
      parameters: {
        'optim.lr': { min: 1e-4, max: 1e-2, log: true },
        'augment.localCropsNumber': { min: 2, max: 6, integer: true },
        'head.outDim': { values: [1024, 4096] },
      },
    });
    const points = expandSearchSpace(random, 20);
    expect(expandSearchSpace(random, 20)).toEqual(points);
    expect(expandSearchSpace({ ...random, seed: 8 }, 20)).not.toEqual(points);
    for (const point of points) {
      expect(point['optim.lr']).toBeGreaterThanOrEqual(1e-4);
      expect(point['optim.lr']).toBeLessThanOrEqual(1e-2);
      expect(Number.isInteger(point['augment.localCropsNumber'])).toBe(true);
      expect([1024, 4096]).toContain(point['head.outDim']);
    }
    expect(() => expandSearchSpace(random, undefined)).toThrow(SearchSpaceError);
  });

  it('names unknown paths, and values the run schema refuses at bounds and at points', () => {
    const unknown = space({
      kind: 'grid',
      parameters: { 'optim.lrr': { values: [1] }, 'model.patchSize.x': { values: [1] } },
    });
    expect(searchSpaceProblems(unknown, [], undefined, {})).toEqual([
      expect.stringMatching(
        /^space\.parameters\.optim\.lrr: unknown field "lrr" in optim \(known: optimizer, lr,/,
      ),
      'space.parameters.model.patchSize.x: model.patchSize has no fields (it is a number)',
    ]);
    const bounds = space({ kind: 'random', parameters: { 'optim.lr': { min: 0.5, max: 2 } } });
    expect(searchSpaceProblems(bounds, [], undefined, {})).toEqual([
      expect.stringMatching(/^space\.parameters\.optim\.lr = 2: optim\.lr: /),
    ]);
    const grid = space({ kind: 'grid', parameters: { 'train.batchSize': { values: [64, 1] } } });
    expect(searchSpaceProblems(grid, expandSearchSpace(grid, undefined), 'fmnist-tiny', {})).toEqual([
      expect.stringMatching(/^space\.parameters\.train\.batchSize = 1: train\.batchSize: /),
    ]);
  });

  it('gives each trial its budget in steps, images counted at its own batch size', () => {
    const request = { preset: 'fmnist-tiny', config: { optim: { lr: 0.001 } }, budget: { images: 1000 } };
    expect(trialOverrides(request, { 'train.batchSize': 128 })).toEqual({
      optim: { lr: 0.001 },
      train: { batchSize: 128, steps: 8 },
    });
    expect(trialOverrides({ ...request, budget: { steps: 5 } }, {})).toEqual({
      optim: { lr: 0.001 },
      train: { steps: 5 },
    });
  });

  it("turns minutes into steps at the budget speed and each trial's own FLOPs per step", () => {
    const flopsPerSecond = 2e9;
    const request = { preset: 'fmnist-tiny', budget: { minutes: 3, flopsPerSecond } };
    const stepsAt = (point: Record<string, number>) =>
      (trialOverrides(request, point).train as { steps: number }).steps;
    const expected = (point: Record<string, number>) =>
      Math.floor(
        (3 * 60 * flopsPerSecond) /
          trainStepFlops(resolveRunConfig('fmnist-tiny', { model: { embedDim: point['model.embedDim'] } })),
      );
    const narrow = stepsAt({ 'model.embedDim': 64 });
    const wide = stepsAt({ 'model.embedDim': 128 });
    expect(narrow).toBe(expected({ 'model.embedDim': 64 }));
    expect(wide).toBe(expected({ 'model.embedDim': 128 }));
    // The wider model costs more per step, so it trains fewer steps in the same minutes.
    expect(wide).toBeLessThan(narrow);
    expect(() => trialOverrides({ preset: 'fmnist-tiny', budget: { minutes: 3 } }, {})).toThrow(
      /minutes need flopsPerSecond/,
    );
  });

  it('takes exactly one of steps, images or minutes, and flopsPerSecond only with minutes', () => {
    const problems = (budget: unknown) =>
      sweepBudgetSchema.safeParse(budget).error?.issues.map((issue) => issue.message) ?? [];
    expect(problems({ minutes: 15 })).toEqual([]);
    expect(problems({ minutes: 15, flopsPerSecond: 1e9 })).toEqual([]);
    expect(problems({ steps: 10, minutes: 15 })).toEqual([
      'give exactly one of "steps", "images" or "minutes"',
    ]);
    expect(problems({ steps: 10, flopsPerSecond: 1e9 })).toEqual(['"flopsPerSecond" goes with "minutes"']);
  });
});

describe('successive halving', () => {
  const sync = { rungs: 3, eta: 2, mode: 'sync' as const };
  const async = { ...sync, mode: 'async' as const };

  it('places rungs at budget / eta^(R-1-i) on checkpoints, and refuses rungs sharing one', () => {
    expect(rungSteps(100, 5, sync)).toEqual([25, 50, 100]);
    expect(rungSteps(100, 30, sync)).toEqual([30, 60, 100]);
    expect(rungSteps(100, 50, sync)).toBeNull();
    expect(rungSteps(7, 1, { rungs: 1, eta: 2 })).toEqual([7]);
  });

  it('sync: decides a rung once every trial still in it has its result, keeping the best 1/eta', () => {
    const waiting = [trial('a', [1]), trial('b', [2]), trial('c', [null]), trial('d', [4])];
    expect(stoppedTrials(waiting, sync)).toEqual(new Map());
    const arrived = [trial('a', [1]), trial('b', [2]), trial('c', [3, 5]), trial('d', [4])];
    expect(stoppedTrials(arrived, sync)).toEqual(
      new Map([
        ['a', 0],
        ['b', 0],
      ]),
    );
    // The second rung keeps max(1, floor(2 / 2)) = 1; the last rung decides nothing.
    const second = [trial('a', [1]), trial('b', [2]), trial('c', [3, 5]), trial('d', [4, 6, 9])];
    expect(stoppedTrials(second, sync)).toEqual(
      new Map([
        ['a', 0],
        ['b', 0],
        ['c', 1],
      ]),
    );
    // A trial that ended without a result drops out instead of holding the rung up.
    const failed = [trial('a', [1]), trial('b', [null], true), trial('c', [3])];
    expect(stoppedTrials(failed, sync)).toEqual(new Map([['a', 0]]));
  });

  it('async (ASHA): ranks each result against those that arrived at its rung before it', () => {
    // Arrival order c (3), a (1), d (4), b (2): a is below c; b is third of four.
    const trials = [
      trial('a', [1], false, [2]),
      trial('b', [2], false, [4]),
      trial('c', [3], false, [1]),
      trial('d', [4], false, [3]),
    ];
    expect(stoppedTrials(trials, async)).toEqual(
      new Map([
        ['a', 0],
        ['b', 0],
      ]),
    );
    // The first to arrive always goes on, and a trial that went on is never stopped later.
    expect(stoppedTrials([trial('a', [1], false, [1]), trial('b', [9], false, [2])], async)).toEqual(
      new Map(),
    );
    expect(stoppedTrials([trial('a', [9], false, [1]), trial('b', [1], false, [2])], async)).toEqual(
      new Map([['b', 0]]),
    );
  });

  it('reports the best result at the highest rung reached', () => {
    expect(bestTrial([trial('a', [9]), trial('b', [2, 3]), trial('c', [5, 4])])).toEqual({
      trialId: 'c',
      rung: 1,
      score: 4,
    });
    expect(bestTrial([trial('a', [null])])).toBeNull();
  });
});

describe('deriveSweep', () => {
  const record = sweepRecordSchema.parse({
    sweepId: 's',
    dataset: 'd',
    space: { kind: 'grid', parameters: { 'optim.lr': { values: [1, 2] } } },
    metric: { kind: 'loss' },
    budget: { steps: 8 },
    earlyStopping: { rungs: 2 },
    trials: [
      { runId: 's-t0', point: { 'optim.lr': 1 } },
      { runId: 's-t1', point: { 'optim.lr': 2 } },
    ],
    status: 'running',
    createdAt: at(0),
    updatedAt: at(0),
  });
  const run = (committedSteps: number[]) => ({
    status: 'running' as const,
    totalSteps: 8,
    commitEvery: 2,
    committedSteps,
    cancelRequested: false,
    error: null,
  });
  const loss = (value: number, step: number): RungObservation => ({ kind: 'result', value, at: at(1), step });

  it('asks for what is missing: trials to create, rungs to evaluate, the worse trial to cancel', () => {
    const early = deriveSweep(record, [
      { runId: 's-t0', point: {}, run: run([2, 4]), rungs: [{ kind: 'none' }, { kind: 'none' }] },
      { runId: 's-t1', point: {}, run: null, rungs: [{ kind: 'none' }, { kind: 'none' }] },
    ]);
    expect(early.actions).toEqual({
      create: ['s-t1'],
      evaluate: [{ runId: 's-t0', rung: 0, step: 4 }],
      cancel: [],
    });
    expect(early.report.status).toBe('running');

    // The loss is lower for t1: t0 is stopped and cancelled; t1 goes on to finish.
    const decided = deriveSweep(record, [
      { runId: 's-t0', point: {}, run: run([2, 4, 6]), rungs: [loss(5, 4), { kind: 'none' }] },
      { runId: 's-t1', point: {}, run: run([2, 4]), rungs: [loss(3, 4), { kind: 'none' }] },
    ]);
    expect(decided.actions.cancel).toEqual(['s-t0']);
    expect(decided.actions.evaluate).toEqual([]);
    expect(decided.report.trials.map((t) => [t.state, t.stoppedAtRung])).toEqual([
      ['stopped', 0],
      ['running', null],
    ]);
    expect(decided.report.best).toMatchObject({ runId: 's-t1', rung: 0, value: 3, step: 4 });
    expect(decided.report.status).toBe('running');

    const done = deriveSweep(record, [
      {
        runId: 's-t0',
        point: {},
        run: { ...run([2, 4, 6]), status: 'cancelled' },
        rungs: [loss(5, 4), { kind: 'none' }],
      },
      {
        runId: 's-t1',
        point: {},
        run: { ...run([2, 4, 6, 8]), status: 'completed' },
        rungs: [loss(3, 4), loss(2, 8)],
      },
    ]);
    expect(done.actions).toEqual({ create: [], evaluate: [], cancel: [] });
    expect(done.report.status).toBe('completed');
    expect(done.report.best).toMatchObject({ runId: 's-t1', rung: 1, value: 2, step: 8 });
  });
});
