import * as tf from '@tensorflow/tfjs-core';

export type GeluKind = 'exact' | 'tanh';

const SQRT_HALF = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
/** 2·√(2/π): tanh(z) = 2·sigmoid(2z) − 1 turns the tanh form into a sigmoid. */
const TANH_SCALE = 1.5957691;
const TANH_CUBIC = 0.044715;

/**
 * Both variants save only x and recompute the rest in the backward pass: activations of the
 * MLP hidden layer are the largest tensors in a block, and memory, not time, limits the batch.
 */
const geluExact = tf.customGrad((x, save) => {
  (save as tf.GradSaveFunc)([x as tf.Tensor]);
  const cdf = tf.mul(tf.add(tf.erf(tf.mul(x as tf.Tensor, SQRT_HALF)), 1), 0.5);
  return {
    value: tf.mul(x as tf.Tensor, cdf),
    gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) =>
      tf.tidy(() => {
        const phi = tf.mul(tf.add(tf.erf(tf.mul(xs, SQRT_HALF)), 1), 0.5);
        const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
        return [tf.mul(dy, tf.add(phi, tf.mul(xs, pdf)))];
      }),
  };
});

function tanhGate(x: tf.Tensor): tf.Tensor {
  return tf.sigmoid(tf.mul(tf.add(x, tf.mul(tf.mul(tf.mul(x, x), x), TANH_CUBIC)), TANH_SCALE));
}

const geluTanh = tf.customGrad((x, save) => {
  (save as tf.GradSaveFunc)([x as tf.Tensor]);
  return {
    value: tf.mul(x as tf.Tensor, tanhGate(x as tf.Tensor)),
    gradFunc: (dy: tf.Tensor, [xs]: tf.Tensor[]) =>
      tf.tidy(() => {
        const s = tanhGate(xs);
        // d/dx [x·s(u)] = s + x·s(1−s)·u', u' = c·(1 + 3a·x²)
        const du = tf.mul(tf.add(tf.mul(tf.square(xs), 3 * TANH_CUBIC), 1), TANH_SCALE);
        const ds = tf.mul(tf.mul(s, tf.sub(1, s)), du);
        return [tf.mul(dy, tf.add(s, tf.mul(xs, ds)))];
      }),
  };
});

/** GELU; `exact` is x·Φ(x) as in the reference, `tanh` the cheaper approximation (max error ≈ 5e-4). */
export function gelu<T extends tf.Tensor>(x: T, kind: GeluKind = 'exact'): T {
  return (kind === 'exact' ? geluExact(x) : geluTanh(x)) as T;
}
