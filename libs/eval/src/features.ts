import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { evalTransform, type DecodedSplit } from '@dinoq/data';
import { vitForward, type ParamTensors } from '@dinoq/dino';
import type { FeatureSet } from './knn';

export interface ExtractOptions {
  config: RunConfig;
  /** Images per forward pass. */
  batchSize?: number;
  /** Evaluate only the first `limit` images. */
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Backbone features for every image of a split: [CLS] after the final norm (spec §11), from
 * images resized to the training global-crop size without augmentation.
 */
export async function extractFeatures(
  params: ParamTensors,
  split: DecodedSplit,
  opts: ExtractOptions,
): Promise<FeatureSet> {
  const { config } = opts;
  const count = Math.min(opts.limit ?? split.count, split.count);
  const batchSize = opts.batchSize ?? 128;
  const size = config.augment.globalCropSize;
  let features: Float32Array | null = null;
  let dim = 0;
  for (let start = 0; start < count; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const pixels = await evalTransform(split, indices, size, config.augment.mean, config.augment.std);
    const out = tf.tidy(() => {
      const x = tf.tensor4d(pixels, [indices.length, size, size, 3]);
      return vitForward(params, x, { config, training: false }).dataSync() as Float32Array;
    });
    if (features === null) {
      dim = out.length / indices.length;
      features = new Float32Array(count * dim);
    }
    features.set(out, start * dim);
    opts.onProgress?.(start + indices.length, count);
  }
  return { features: features ?? new Float32Array(0), labels: split.labels.slice(0, count), count, dim };
}

/** The raw-pixel baseline: each image's pixels as its feature vector, same k-NN protocol. */
export function rawPixelFeatures(split: DecodedSplit, limit?: number): FeatureSet {
  const count = Math.min(limit ?? split.count, split.count);
  const dim = split.height * split.width * split.channels;
  const features = new Float32Array(count * dim);
  for (let i = 0; i < count * dim; i++) features[i] = split.images[i] / 255;
  return { features, labels: split.labels.slice(0, count), count, dim };
}
