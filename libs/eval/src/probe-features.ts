import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { intermediateLayers, type ParamTensors } from '@dinoq/dino';
import type { FeatureSet } from './knn';
import { passFeatures, type EvalImages } from './pass-features';

export interface ProbeFeatureOptions {
  config: RunConfig;
  /** [CLS] tokens of this many last blocks are concatenated (spec §12: 4). */
  lastBlocks?: number;
  /** Append the mean of the last block's patch tokens, interleaved with [CLS] (spec §12; only with lastBlocks = 1). */
  avgPool?: boolean;
  batchSize?: number;
  /** Only the first `limit` samples. */
  limit?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Linear-probe features (spec §12, `eval_linear.py`): the [CLS] tokens of the last n blocks,
 * each through the final norm, concatenated → n·D. With avgPool (n = 1) the reference stacks
 * [CLS] and the patch-token mean on a new last axis and flattens, so the layout is
 * cls₀, avg₀, cls₁, avg₁, …; it is kept so released linear heads would load.
 */
export async function extractProbeFeatures(
  params: ParamTensors,
  images: EvalImages,
  opts: ProbeFeatureOptions,
): Promise<FeatureSet> {
  const { config } = opts;
  const lastBlocks = opts.lastBlocks ?? 4;
  const avgPool = opts.avgPool ?? false;
  if (avgPool && lastBlocks !== 1)
    throw new Error(`probe features: avgPool needs lastBlocks = 1 (as the reference), got ${lastBlocks}`);
  return passFeatures(images, opts, (x) => {
    const layers = intermediateLayers(params, x, lastBlocks, { config });
    const [b, tokens, d] = layers[0].shape;
    const cls = layers.map((t) => tf.reshape(tf.slice(t, [0, 0, 0], [b, 1, d]), [b, d]));
    if (!avgPool) return tf.concat(cls, 1) as tf.Tensor2D;
    const avg = tf.mean(tf.slice(layers[0], [0, 1, 0], [b, tokens - 1, d]), 1);
    return tf.reshape(tf.stack([cls[0], avg], 2), [b, 2 * d]);
  });
}
