import type { AugmentConfig } from '@dinoq/config';
import { augmentBatch, type AugmentedBatch } from './augment/multi-crop';
import type { AugmentPool } from './augment/augment-pool';
import type { ImageSource } from './images';
import { batchIndices, epochOfStep } from './sampler';

export interface TrainingBatch extends AugmentedBatch {
  step: number;
  epoch: number;
  /** Dataset indices of the batch's images, in batch order. */
  indices: number[];
}

/** A split's sample order: the dataset indices of a step's batch (sampler.ts, streaming/sample-order.ts). */
export interface SampleOrder {
  readonly count: number;
  batchIndices(batchSize: number, step: number): number[];
}

/**
 * Batch `step` of a run: the indices `order` gives (by default a full shuffle of the split per
 * epoch, sampler.ts), multi-crop augmented for that epoch, in `pool`'s threads when one is given
 * (it must hold the same images) or else on this thread. A streamed split's order with the split
 * held in memory gives the batches the streamed path gives.
 */
export function trainingBatch(
  data: ImageSource,
  cfg: AugmentConfig,
  options: { seed: number; batchSize: number; pool?: AugmentPool; order?: SampleOrder },
  step: number,
): Promise<TrainingBatch> {
  const { order } = options;
  if (order && order.count !== data.count)
    throw new Error(`sample order covers ${order.count} images, the split holds ${data.count}`);
  const indices = order
    ? order.batchIndices(options.batchSize, step)
    : batchIndices(data.count, options.batchSize, options.seed, step);
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
