import * as tf from '@tensorflow/tfjs-core';

/**
 * Shape-only and additive ops with hand-written gradients.
 *
 * tfjs-core's CommonJS build registers no gradient functions (only the full `@tensorflow/tfjs`
 * bundle does), so every op on the path from a parameter to the loss must carry its own
 * backward. These also save nothing for the backward pass, unlike the stock Reshape and Add
 * gradients, which keep their inputs alive until the whole backward ends.
 */

/** Differentiable reshape. */
export function reshape<R extends tf.Rank>(x: tf.Tensor, shape: tf.ShapeMap[R]): tf.Tensor<R> {
  const from = x.shape;
  const f = tf.customGrad((t) => ({
    value: tf.reshape(t as tf.Tensor, shape as number[]),
    gradFunc: (dy: tf.Tensor) => tf.reshape(dy, from),
  }));
  return f(x) as tf.Tensor<R>;
}

const addSameShape = tf.customGrad((a, b) => ({
  value: tf.add(a as tf.Tensor, b as tf.Tensor),
  // Fresh handles on dy's buffer (no copy): the tape disposes a gradient handle when it
  // accumulates into it, which must not reach the other input's gradient.
  gradFunc: (dy: tf.Tensor) => [tf.reshape(dy, dy.shape), tf.reshape(dy, dy.shape)],
}));

/** Differentiable `a + b` for tensors of the same shape (residual connections). */
export function residualAdd<T extends tf.Tensor>(a: T, b: T): T {
  if (!tf.util.arraysEqual(a.shape, b.shape)) {
    throw new Error(`residualAdd: shapes [${a.shape}] and [${b.shape}] differ`);
  }
  return addSameShape(a, b) as T;
}

/** Differentiable concatenation of 2-D tensors along rows (axis 0). */
export function concatRows(parts: tf.Tensor2D[]): tf.Tensor2D {
  if (parts.length === 1) return parts[0];
  const cols = parts[0].shape[1];
  parts.forEach((p, i) => {
    if (p.rank !== 2 || p.shape[1] !== cols)
      throw new Error(`concatRows: part ${i} is [${p.shape}], expected [·, ${cols}]`);
  });
  const rows = parts.map((p) => p.shape[0]);
  // customGrad passes its save function after the tensors; it is not needed here.
  const f = tf.customGrad((...args) => ({
    value: tf.concat(args.slice(0, parts.length) as tf.Tensor2D[], 0),
    gradFunc: (dy: tf.Tensor) =>
      tf.tidy(() => {
        let start = 0;
        return rows.map((n) => {
          const g = tf.slice(dy, [start, 0], [n, cols]);
          start += n;
          return g;
        });
      }),
  }));
  return f(...parts) as tf.Tensor2D;
}
