import type { AugmentConfig } from '@dinoq/config';
import { augmentBatch, type AugmentedBatch, type ImageSource } from './augment/multi-crop';
import type { AugmentPool } from './augment/augment-pool';
import { batchIndices, epochOfStep } from './sampler';

export interface TrainingBatch extends AugmentedBatch {
  step: number;
  epoch: number;
  /** Dataset indices of the batch's images, in batch order. */
  indices: number[];
}

/**
 * Batch `step` of a run: the seeded sampler's indices, multi-crop augmented for that epoch, in
 * `pool`'s threads when one is given (it must hold the same images) or else on this thread.
 */
export function trainingBatch(
  data: ImageSource,
  cfg: AugmentConfig,
  options: { seed: number; batchSize: number; pool?: AugmentPool },
  step: number,
): Promise<TrainingBatch> {
  const indices = batchIndices(data.count, options.batchSize, options.seed, step);
  const epoch = epochOfStep(data.count, options.batchSize, step);
  const augmentation = { seed: options.seed, epoch };
  const augmented = options.pool
    ? options.pool.augment(indices, cfg, augmentation)
    : augmentBatch(data, indices, cfg, augmentation);
  return augmented.then((b) => ({
    ...b,
    step,
    epoch,
    indices,
  }));
}
