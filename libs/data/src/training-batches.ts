import type { AugmentConfig } from '@dinoq/config';
import { augmentBatch, type AugmentedBatch, type ImageSource } from './augment/multi-crop';
import { Prefetcher } from './prefetcher';
import { batchIndices, epochOfStep } from './sampler';

export interface TrainingBatch extends AugmentedBatch {
  step: number;
  epoch: number;
  /** Dataset indices of the batch's images, in batch order. */
  indices: number[];
}

/** Batch `step` of a run: the seeded sampler's indices, multi-crop augmented for that epoch. */
export function trainingBatch(
  data: ImageSource,
  cfg: AugmentConfig,
  options: { seed: number; batchSize: number },
  step: number,
): Promise<TrainingBatch> {
  const indices = batchIndices(data.count, options.batchSize, options.seed, step);
  const epoch = epochOfStep(data.count, options.batchSize, step);
  return augmentBatch(data, indices, cfg, { seed: options.seed, epoch }).then((b) => ({
    ...b,
    step,
    epoch,
    indices,
  }));
}

/** A Prefetcher of training batches, so `get(step + 1)` is usually ready when step `step` ends. */
export function trainingBatchPrefetcher(
  data: ImageSource,
  cfg: AugmentConfig,
  options: { seed: number; batchSize: number; depth?: number },
): Prefetcher<TrainingBatch> {
  return new Prefetcher((step) => trainingBatch(data, cfg, options, step), { depth: options.depth });
}
