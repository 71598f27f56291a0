import * as tf from '@tensorflow/tfjs-core';
import { getParam, type ParamTensors } from '../params';
import { linearConstantInput } from '../layers/linear';

/**
 * Rows `[B·h·w, p·p·C]` of non-overlapping p×p patches of NHWC images, patches in row-major
 * order and each row laid out (py, px, c) to match `patch_embed.proj.weight` (see params.ts).
 * Only reshapes and one 4-D transpose: Conv2D has no trainable kernel on the wasm backend.
 */
export function patchify(images: tf.Tensor4D, patchSize: number): tf.Tensor2D {
  const [B, H, W, C] = images.shape;
  const p = patchSize;
  if (H % p !== 0 || W % p !== 0) {
    throw new Error(
      `images of ${H}×${W} px cannot be cut into ${p}×${p} patches (sides must be multiples of ${p})`,
    );
  }
  const h = H / p;
  const w = W / p;
  // (b·gy, py, gx, px·c) → (b·gy, gx, py, px·c)
  const grouped = tf.reshape(images, [B * h, p, w, p * C]);
  return tf.reshape(tf.transpose(grouped, [0, 2, 1, 3]), [B * h * w, p * p * C]);
}

export interface PatchEmbedding {
  /** `[B·h·w, D]` */
  tokens: tf.Tensor2D;
  gridH: number;
  gridW: number;
}

export function patchEmbed(params: ParamTensors, images: tf.Tensor4D, patchSize: number): PatchEmbedding {
  const weight = getParam(params, 'backbone.patch_embed.proj.weight') as tf.Tensor2D;
  const bias = getParam(params, 'backbone.patch_embed.proj.bias') as tf.Tensor1D;
  const channels = images.shape[3];
  if (weight.shape[0] !== patchSize * patchSize * channels) {
    throw new Error(
      `backbone.patch_embed.proj.weight has ${weight.shape[0]} rows, ` +
        `images with ${channels} channels and patch ${patchSize} need ${patchSize * patchSize * channels}`,
    );
  }
  const tokens = linearConstantInput(patchify(images, patchSize), weight, bias);
  return { tokens, gridH: images.shape[1] / patchSize, gridW: images.shape[2] / patchSize };
}
