import { trainStepFlops, type RunConfig } from '@dinoq/config';
import type { StepMetricsLine } from './schemas';

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The training speed a worker announces after a training job: the step's estimated matmul FLOPs
 * (libs/config step-cost.ts) at the median throughput of the job's steps, leaving out the first
 * when there are others (it builds kernels and fills the pipeline). Null when no step was trained.
 */
export function measuredTrainFlopsPerSecond(
  config: RunConfig,
  lines: readonly StepMetricsLine[],
): number | null {
  const steady = lines.length > 1 ? lines.slice(1) : lines;
  if (steady.length === 0) return null;
  const imagesPerSecond = median(steady.map((line) => line.imagesPerSecond));
  const flops = (trainStepFlops(config) / config.train.batchSize) * imagesPerSecond;
  return Number.isFinite(flops) && flops > 0 ? flops : null;
}
