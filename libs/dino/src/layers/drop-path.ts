import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../rng';

/**
 * Per-sample keep multipliers: floor(1 − p + U[0,1)) decides keep (1) or drop (0), and kept
 * samples are scaled by 1/(1 − p) so the expectation is unchanged (spec §2.5).
 */
export function dropPathMask(batch: number, rate: number, rng: Rng): Float32Array {
  if (!(rate >= 0 && rate < 1)) throw new Error(`drop-path rate must be in [0, 1), got ${rate}`);
  const keep = 1 - rate;
  const mask = new Float32Array(batch);
  for (let i = 0; i < batch; i++) mask[i] = Math.floor(keep + rng()) / keep;
  return mask;
}

/** Block i's rate: linearly spaced from 0 (first block) to `rate` (last block), as torch.linspace. */
export function dropPathRates(depth: number, rate: number): number[] {
  if (depth === 1) return [0];
  return Array.from({ length: depth }, (_, i) => (rate * i) / (depth - 1));
}

export interface DropPathOptions {
  /** Images in x; x holds `batch` equal runs of token rows. */
  batch: number;
  rate: number;
  training: boolean;
  /** Required when training with rate > 0. */
  rng?: Rng;
}

/**
 * Stochastic depth on a residual branch `x` of shape [batch·tokens, channels]: whole samples
 * are dropped. Returns x itself when inactive (eval mode or p = 0).
 */
export function dropPath(x: tf.Tensor2D, opts: DropPathOptions): tf.Tensor2D {
  if (!opts.training || opts.rate === 0) return x;
  if (!opts.rng) throw new Error('dropPath: training with a non-zero rate needs an rng');
  const [rows, channels] = x.shape;
  const { batch } = opts;
  if (rows % batch !== 0) {
    throw new Error(`dropPath: ${rows} token rows are not a multiple of the batch size ${batch}`);
  }
  const mask = tf.tensor2d(dropPathMask(batch, opts.rate, opts.rng), [batch, 1]);
  const perSample = [batch, (rows / batch) * channels];
  // Only the mask is kept for the backward; it is a constant, so its own gradient is zero.
  const apply = tf.customGrad((t, m, save) => {
    (save as tf.GradSaveFunc)([m as tf.Tensor]);
    return {
      value: tf.reshape(tf.mul(tf.reshape(t as tf.Tensor, perSample), m as tf.Tensor), [rows, channels]),
      gradFunc: (dy: tf.Tensor, [ms]: tf.Tensor[]) =>
        tf.tidy(() => [
          tf.reshape(tf.mul(tf.reshape(dy, perSample), ms), [rows, channels]),
          tf.zerosLike(ms),
        ]),
    };
  });
  const out = apply(x, mask) as tf.Tensor2D;
  mask.dispose();
  return out;
}
