import type { EvaluationView, LiveJobEvent, StoredMetricsLine } from '../src/api-types';
import {
  alignRuns,
  knnColumns,
  liveMetricsLine,
  maxEntropy,
  mergeMetrics,
  metricColumns,
  newestKnn,
  nextStep,
  withConstant,
} from '../src/series';

const line = (step: number, loss: number, extra: Partial<StoredMetricsLine> = {}) =>
  ({ step, loss, teacherEntropy: 1, ...extra }) as StoredMetricsLine;

function knnView(evalId: string, step: number, scores: [number, number][] | null): EvaluationView {
  return {
    evalId,
    status: scores ? 'completed' : 'active',
    step,
    kinds: ['knn'],
    jobId: null,
    error: null,
    report: scores
      ? ({ step, knn: scores.map(([k, top1]) => ({ k, top1, top5: 100 })) } as EvaluationView['report'])
      : null,
    summary: [],
  };
}

describe('metrics lines as chart columns', () => {
  it('merges stored and live lines into one line per step, in step order, the newest winning', () => {
    const merged = mergeMetrics([line(2, 2.0), line(0, 3.0), line(1, 2.5)], [line(2, 1.9), line(3, 1.8)]);
    expect(merged.map((l) => [l.step, l.loss])).toEqual([
      [0, 3.0],
      [1, 2.5],
      [2, 1.9],
      [3, 1.8],
    ]);
    expect(nextStep(merged)).toBe(4);
    expect(nextStep([])).toBe(0);
  });

  it('puts each metric in a column against step, with null for missing or non-finite values', () => {
    const lines = [line(0, 3), line(1, Number.NaN, { teacherEntropy: undefined }), line(2, 2)];
    expect(metricColumns(lines, ['loss', 'teacherEntropy'])).toEqual([
      [0, 1, 2],
      [3, null, 2],
      [1, null, 1],
    ]);
  });

  it('adds ln K as a constant line beside the teacher entropy', () => {
    const columns = withConstant(
      metricColumns([line(0, 3), line(5, 2)], ['teacherEntropy']),
      maxEntropy(4096),
    );
    expect(columns[0]).toEqual([0, 5]);
    expect(columns[2]).toEqual([Math.log(4096), Math.log(4096)]);
    expect(maxEntropy(4096)).toBeCloseTo(8.3178, 4);
  });

  it('aligns several runs on the union of their steps', () => {
    const a = [line(0, 3), line(2, 2)];
    const b = [line(1, 4), line(2, 3.5), line(3, 3)];
    expect(alignRuns([a, b], 'loss')).toEqual([
      [0, 1, 2, 3],
      [3, null, 2, null],
      [null, 4, 3.5, 3],
    ]);
  });
});

describe('k-NN history', () => {
  it('draws top-1 per k against step from completed reports, the newer report at a step winning', () => {
    const { ks, columns } = knnColumns([
      knnView('eval-3', 50, [
        [10, 41],
        [20, 43],
      ]),
      knnView('eval-1', 0, [[10, 12]]),
      knnView('eval-2', 50, [[10, 40]]),
      knnView('eval-4', 100, null),
    ]);
    expect(ks).toEqual([10, 20]);
    expect(columns).toEqual([
      [0, 50],
      [12, 41],
      [null, 43],
    ]);
  });

  it('names the best k of the newest report for the runs table', () => {
    expect(
      newestKnn([
        knnView('eval-1', 0, [[10, 12]]),
        knnView('eval-2', 50, [
          [10, 40],
          [20, 44],
        ]),
      ]),
    ).toEqual({
      step: 50,
      k: 20,
      top1: 44,
    });
    expect(newestKnn([knnView('eval-1', 0, null)])).toBeNull();
  });
});

describe('live lines', () => {
  const event = (over: Partial<LiveJobEvent>): LiveJobEvent => ({
    event: 'progress',
    queue: 'train-cpu' as LiveJobEvent['queue'],
    jobId: 'run-a-g0-shard-0',
    name: 'train-shard',
    runId: 'run-a',
    progress: { step: 3, toStep: 10, loss: 2, imagesPerSecond: 5, metrics: line(3, 2) },
    failedReason: null,
    ...over,
  });

  it("takes the metrics line of a training job's progress for its own run only", () => {
    expect(liveMetricsLine(event({}), 'run-a')).toMatchObject({ step: 3, loss: 2 });
    expect(liveMetricsLine(event({}), 'run-b')).toBeNull();
    expect(liveMetricsLine(event({ event: 'completed', progress: null }), 'run-a')).toBeNull();
    expect(liveMetricsLine(event({ progress: { phase: 'upload', done: 1 } }), 'run-a')).toBeNull();
  });
});
