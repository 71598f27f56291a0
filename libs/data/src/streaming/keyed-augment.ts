import type { AugmentConfig } from '@dinoq/config';
import { augmentBatch, type AugmentedBatch } from '../augment/multi-crop';
import type { ImageSource } from '../images';

/**
 * DINO multi-crop for a batch whose images are held in batch order (image b of `images` is the
 * batch's b-th sample) while each image's draws are keyed by its global sample index `keys[b]`,
 * so a streamed batch gets the views the in-memory path gives the same samples.
 */
export function augmentKeyedBatch(
  images: ImageSource,
  keys: readonly number[],
  cfg: AugmentConfig,
  options: { seed: number; epoch: number },
): Promise<AugmentedBatch> {
  return augmentBatch(
    images,
    keys.map((_, b) => b),
    cfg,
    { ...options, keys },
  );
}
