import type { EvaluationView, LiveJobEvent, StoredMetricsLine, TrainingProgress } from './api-types';

/*
 * Metrics lines and evaluation reports as chart columns: uPlot's aligned data, one array of x
 * values (steps) and one array per series, null where a series has no value at that x.
 */

export type Columns = [number[], ...(number | null)[][]];

export type MetricName =
  | 'loss'
  | 'teacherEntropy'
  | 'klTeacherStudent'
  | 'lr'
  | 'weightDecay'
  | 'momentum'
  | 'teacherTemp'
  | 'imagesPerSecond'
  | 'dataWaitMs';

export type MetricsPoint = Pick<StoredMetricsLine, 'step'> & Partial<Record<MetricName, number>>;

const finiteOrNull = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) ? value : null;

/**
 * Stored lines, then live ones: one line per step in step order. A step that appears twice (a
 * shard retried from its last commit trains it again) keeps the line written last.
 */
export function mergeMetrics<L extends MetricsPoint>(stored: readonly L[], live: readonly L[] = []): L[] {
  const byStep = new Map<number, L>();
  for (const line of [...stored, ...live]) byStep.set(line.step, line);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** The step after the last stored one: where an incremental fetch of the metrics starts. */
export function nextStep(lines: readonly MetricsPoint[]): number {
  return lines.length === 0 ? 0 : lines[lines.length - 1].step + 1;
}

/** Columns of some metrics against step; lines must be in step order (see mergeMetrics). */
export function metricColumns(lines: readonly MetricsPoint[], metrics: readonly MetricName[]): Columns {
  return [
    lines.map((line) => line.step),
    ...metrics.map((name) => lines.map((line) => finiteOrNull(line[name]))),
  ];
}

/** Columns with a constant series added (a reference line such as ln K). */
export function withConstant(columns: Columns, value: number): Columns {
  return [...columns, columns[0].map(() => value)] as Columns;
}

/**
 * The largest possible entropy of the teacher's K-way output (nats): a teacher near ln K is
 * uniform, one near 0 has collapsed to one dimension.
 */
export function maxEntropy(outDim: number): number {
  return Math.log(outDim);
}

/**
 * k-NN top-1 against the step of the evaluated checkpoint, one series per k. Completed k-NN
 * reports only; of two reports at the same step, the newer (larger evalId, ids sort by time) wins.
 */
export function knnColumns(evaluations: readonly EvaluationView[]): { ks: number[]; columns: Columns } {
  const reports = evaluations
    .flatMap((view) =>
      view.report?.knn ? [{ evalId: view.evalId, step: view.report.step, knn: view.report.knn }] : [],
    )
    .sort((a, b) => a.step - b.step || a.evalId.localeCompare(b.evalId));
  const steps = [...new Set(reports.map((report) => report.step))];
  const ks = [...new Set(reports.flatMap((report) => report.knn.map((score) => score.k)))].sort(
    (a, b) => a - b,
  );
  const columns = ks.map(() => steps.map((): number | null => null));
  for (const report of reports) {
    const row = steps.indexOf(report.step);
    for (const score of report.knn) columns[ks.indexOf(score.k)][row] = finiteOrNull(score.top1);
  }
  return { ks, columns: [steps, ...columns] };
}

/** The best top-1 over k of a run's newest completed k-NN report, with its step; null when none. */
export function newestKnn(
  evaluations: readonly EvaluationView[],
): { step: number; k: number; top1: number } | null {
  let newest: { step: number; k: number; top1: number } | null = null;
  for (const view of evaluations) {
    const report = view.report;
    if (!report?.knn || report.knn.length === 0 || (newest && report.step < newest.step)) continue;
    const best = report.knn.reduce((a, b) => (b.top1 > a.top1 ? b : a));
    newest = { step: report.step, k: best.k, top1: best.top1 };
  }
  return newest;
}

/** Several runs' values of one metric on one shared step axis (null where a run has no step). */
export function alignRuns(runs: readonly (readonly MetricsPoint[])[], metric: MetricName): Columns {
  const steps = [...new Set(runs.flatMap((lines) => lines.map((line) => line.step)))].sort((a, b) => a - b);
  return [
    steps,
    ...runs.map((lines) => {
      const byStep = new Map(lines.map((line) => [line.step, finiteOrNull(line[metric])]));
      return steps.map((step) => byStep.get(step) ?? null);
    }),
  ];
}

/** The metrics line a training job of `runId` reported with this event; null for any other event. */
export function liveMetricsLine(event: LiveJobEvent, runId: string): StoredMetricsLine | null {
  if (event.event !== 'progress' || event.runId !== runId || !event.progress) return null;
  const metrics = (event.progress as Partial<TrainingProgress>).metrics;
  return metrics && typeof metrics.step === 'number' ? metrics : null;
}
