import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { lastSelfAttention, type ParamTensors } from '@dinoq/dino';
import { massMask, meanRows, upsampleNearest, DEFAULT_MASS_THRESHOLD } from './masks';

/**
 * [CLS]→patch attention of the last block, per head (spec §13): row 0 of the softmax
 * probabilities, key columns 1… (the [CLS]→[CLS] weight is left out, so a head's row sums to
 * less than 1).
 */
export interface ClsAttention {
  batch: number;
  heads: number;
  gridH: number;
  gridW: number;
  patchSize: number;
  /** `[batch, heads, gridH·gridW]`, row-major patches. */
  data: Float32Array;
}

/** Runs the backbone on normalised NHWC images (sides multiples of the patch size). */
export function clsAttention(
  params: ParamTensors,
  config: Pick<RunConfig, 'model'>,
  images: tf.Tensor4D,
): ClsAttention {
  const p = config.model.patchSize;
  const [batch, height, width] = images.shape;
  if (height % p !== 0 || width % p !== 0)
    throw new Error(`clsAttention: image ${height}×${width} is not a multiple of the patch size ${p}`);
  const gridH = height / p;
  const gridW = width / p;
  const n = gridH * gridW;
  const data = tf.tidy(() => {
    const probs = lastSelfAttention(params, images, { config, training: false });
    const heads = probs.shape[1];
    return tf.slice(probs, [0, 0, 0, 1], [batch, heads, 1, n]).dataSync() as Float32Array;
  });
  const heads = data.length / (batch * n);
  return { batch, heads, gridH, gridW, patchSize: p, data: Float32Array.from(data) };
}

/** Maps and masks of one image, upsampled to the model's input resolution. */
export interface ImageAttention {
  /** Raw per-head maps at patch resolution `[heads, gridH·gridW]`. */
  heads: Float32Array[];
  /** Mean over heads at patch resolution. */
  mean: Float32Array;
  /** `massMask` of each head, upsampled: `[gridH·p, gridW·p]`, values 0/1. */
  headMasks: Uint8Array[];
  meanMask: Uint8Array;
  height: number;
  width: number;
}

/** Splits a batch into per-image maps and thresholded masks (t = 0.6 by default). */
export function imageAttention(
  att: ClsAttention,
  index: number,
  threshold = DEFAULT_MASS_THRESHOLD,
): ImageAttention {
  if (index < 0 || index >= att.batch)
    throw new Error(`imageAttention: image ${index} not in 0..${att.batch - 1}`);
  const n = att.gridH * att.gridW;
  const own = att.data.subarray(index * att.heads * n, (index + 1) * att.heads * n);
  const heads = Array.from({ length: att.heads }, (_, h) => own.slice(h * n, (h + 1) * n));
  const mean = meanRows(own, att.heads, n);
  const up = (m: Uint8Array) => upsampleNearest(m, att.gridH, att.gridW, att.patchSize);
  return {
    heads,
    mean,
    headMasks: heads.map((h) => up(massMask(h, threshold))),
    meanMask: up(massMask(mean, threshold)),
    height: att.gridH * att.patchSize,
    width: att.gridW * att.patchSize,
  };
}
