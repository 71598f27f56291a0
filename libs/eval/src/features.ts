import type * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { requireUniformSize, type DecodedSplit } from '@dinoq/data';
import { vitForward, type ParamTensors } from '@dinoq/dino';
import type { FeatureSet } from './knn';
import { passFeatures, type EvalImages } from './pass-features';

export interface ExtractOptions {
  config: RunConfig;
  /** Images per forward pass. */
  batchSize?: number;
  /** Evaluate only the first `limit` samples. */
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Backbone features for every usable image of a split, held or streamed: [CLS] after the final
 * norm (spec §11), from images centre-cropped and resized to the training global-crop size without
 * augmentation (evalTransform; images of their own sizes get the reference's Resize + CenterCrop).
 */
export function extractFeatures(
  params: ParamTensors,
  images: EvalImages,
  opts: ExtractOptions,
): Promise<FeatureSet> {
  const { config } = opts;
  return passFeatures(images, opts, (x) => vitForward(params, x, { config, training: false }) as tf.Tensor2D);
}

/** The raw-pixel baseline: each image's pixels as its feature vector, same k-NN protocol. */
export function rawPixelFeatures(split: DecodedSplit, limit?: number): FeatureSet {
  const count = Math.min(limit ?? split.count, split.count);
  const { height, width } = requireUniformSize(split, 'raw-pixel features');
  const dim = height * width * split.channels;
  const features = new Float32Array(count * dim);
  for (let i = 0; i < count * dim; i++) features[i] = split.images[i] / 255;
  return { features, labels: split.labels.slice(0, count), count, dim };
}
