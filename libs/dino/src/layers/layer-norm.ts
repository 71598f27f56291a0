import * as tf from '@tensorflow/tfjs-core';

/** The reference ViT's LayerNorm epsilon (spec §2.1). */
export const LAYER_NORM_EPS = 1e-6;

/**
 * LayerNorm over the last axis of `[tokens, channels]`, with a hand-written backward that
 * keeps only the normalised input and the per-row reciprocal std: autodiff of the mean and
 * variance would save more tensors and run several extra reductions.
 */
const layerNormImpl = tf.customGrad((x, gamma, beta, save) => {
  const [x2, g, b] = [x as tf.Tensor2D, gamma as tf.Tensor1D, beta as tf.Tensor1D];
  const centred = tf.sub(x2, tf.mean(x2, -1, true));
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), -1, true), LAYER_NORM_EPS));
  const xhat = tf.mul(centred, rstd);
  (save as tf.GradSaveFunc)([xhat, rstd, g]);
  return {
    value: tf.add(tf.mul(xhat, g), b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [xh, rs, gs] = saved;
        const dxhat = tf.mul(dy, gs);
        // d/dx of (x − mean)·rstd, projected so that the row mean and the xhat component vanish.
        const dx = tf.mul(
          tf.sub(tf.sub(dxhat, tf.mean(dxhat, -1, true)), tf.mul(xh, tf.mean(tf.mul(dxhat, xh), -1, true))),
          rs,
        );
        return [dx, tf.sum(tf.mul(dy, xh), 0), tf.sum(dy, 0)];
      }),
  };
});

export function layerNorm(x: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D): tf.Tensor2D {
  const c = x.shape[1];
  if (x.rank !== 2 || gamma.shape[0] !== c || beta.shape[0] !== c) {
    throw new Error(
      `layerNorm: input [${x.shape}] needs weight and bias of [${c}], got [${gamma.shape}] and [${beta.shape}]`,
    );
  }
  return layerNormImpl(x, gamma, beta) as tf.Tensor2D;
}
