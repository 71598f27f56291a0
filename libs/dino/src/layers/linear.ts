import * as tf from '@tensorflow/tfjs-core';

/**
 * Fully connected layers on 2-D activations `[tokens, in] × [in, out]`.
 *
 * The backward pass is written by hand because autodiff of `matMul` uses transpose flags,
 * which leave the fast XNNPACK path on the wasm backend. Here every product is a plain NN
 * matMul on explicitly transposed operands, and the narrower matrix goes on the right since
 * that is the operand XNNPACK re-packs on every call.
 */

function weightGrad(x: tf.Tensor2D, dy: tf.Tensor2D, w: tf.Tensor): tf.Tensor2D {
  const [inDim, outDim] = w.shape;
  return inDim < outDim ? tf.transpose(tf.matMul(tf.transpose(dy), x)) : tf.matMul(tf.transpose(x), dy);
}

function inputGrad(dy: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(dy, tf.transpose(w));
}

const linearWithBias = tf.customGrad((x, w, b, save) => {
  const [x2, w2, b1] = [x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D];
  (save as tf.GradSaveFunc)([x2, w2]);
  return {
    value: tf.fused.matMul({ a: x2, b: w2, bias: b1 }),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const g = dy as tf.Tensor2D;
        return [inputGrad(g, ws), weightGrad(xs, g, ws), tf.sum(g, 0)];
      }),
  };
});

const linearNoBias = tf.customGrad((x, w, save) => {
  const [x2, w2] = [x as tf.Tensor2D, w as tf.Tensor2D];
  (save as tf.GradSaveFunc)([x2, w2]);
  return {
    value: tf.matMul(x2, w2),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
      tf.tidy(() => {
        const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const g = dy as tf.Tensor2D;
        return [inputGrad(g, ws), weightGrad(xs, g, ws)];
      }),
  };
});

function checkShapes(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | undefined, what: string): void {
  if (x.rank !== 2 || w.rank !== 2 || x.shape[1] !== w.shape[0]) {
    throw new Error(
      `${what}: input [${x.shape}] does not match weight [${w.shape}] (want [T, in] × [in, out])`,
    );
  }
  if (b && (b.rank !== 1 || b.shape[0] !== w.shape[1])) {
    throw new Error(`${what}: bias [${b.shape}] does not match weight [${w.shape}]`);
  }
}

/** `x·w + b` with gradients for x, w and b. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  checkShapes(x, w, b, 'linear');
  return (b ? linearWithBias(x, w, b) : linearNoBias(x, w)) as tf.Tensor2D;
}

/**
 * `x·w + b` where x is a constant (image patches, an interpolation matrix): its gradient
 * would cost as much as the forward product and nobody needs it, so it is never formed.
 */
export function linearConstantInput(x: tf.Tensor2D, w: tf.Tensor2D, b?: tf.Tensor1D): tf.Tensor2D {
  checkShapes(x, w, b, 'linearConstantInput');
  if (b) {
    const f = tf.customGrad((w0, b0, save) => {
      (save as tf.GradSaveFunc)([x, w0 as tf.Tensor2D]);
      return {
        value: tf.fused.matMul({ a: x, b: w0 as tf.Tensor2D, bias: b0 as tf.Tensor1D }),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
            return [weightGrad(xs, dy as tf.Tensor2D, ws), tf.sum(dy, 0)];
          }),
      };
    });
    return f(w, b) as tf.Tensor2D;
  }
  const f = tf.customGrad((w0, save) => {
    (save as tf.GradSaveFunc)([x, w0 as tf.Tensor2D]);
    return {
      value: tf.matMul(x, w0 as tf.Tensor2D),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
          return [weightGrad(xs, dy as tf.Tensor2D, ws)];
        }),
    };
  });
  return f(w) as tf.Tensor2D;
}
