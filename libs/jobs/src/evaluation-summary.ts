import type { EvaluationBaselines, EvaluationReport } from './schemas';

/*
 * One way to print a trained score beside its baselines, for every place that shows one (the
 * CLI, the demo, the API's evaluation view, the worker's log):
 *   "k=20 top-1 61.2 % (random 49.3 %, pixels 81.1 %)"
 */

interface Top1 {
  top1: number;
}

const percent = (value: number) => `${value.toFixed(1)} %`;

/** "top-1 61.2 % (random 49.3 %, pixels 81.1 %)"; without baselines, the score alone. */
export function top1WithBaselines(trained: Top1, baselines?: { randomInit: Top1; rawPixels: Top1 }): string {
  const score = `top-1 ${percent(trained.top1)}`;
  if (!baselines) return score;
  return `${score} (random ${percent(baselines.randomInit.top1)}, pixels ${percent(baselines.rawPixels.top1)})`;
}

/** One line per k: "k=20 top-1 61.2 % (random 49.3 %, pixels 81.1 %)"; a baseline lacking that k is left out. */
export function knnLines(
  scores: readonly (Top1 & { k: number })[],
  baselines?: EvaluationBaselines['knn'],
): string[] {
  return scores.map((score) => {
    const randomInit = baselines?.randomInit.find((b) => b.k === score.k);
    const rawPixels = baselines?.rawPixels.find((b) => b.k === score.k);
    const both = randomInit && rawPixels ? { randomInit, rawPixels } : undefined;
    return `k=${score.k} ${top1WithBaselines(score, both)}`;
  });
}

/** The report's scores with their baselines, one line per k-NN k and one for the linear probe. */
export function evaluationSummary(report: Pick<EvaluationReport, 'knn' | 'linear' | 'baselines'>): string[] {
  return [
    ...(report.knn ? knnLines(report.knn, report.baselines?.knn).map((line) => `k-NN ${line}`) : []),
    ...(report.linear ? [`linear ${top1WithBaselines(report.linear, report.baselines?.linear)}`] : []),
  ];
}
