import * as tf from '@tensorflow/tfjs-core';

/**
 * Token-sequence assembly and extraction with hand-written gradients (see layers/structural.ts
 * for why). Sequences are kept as 2-D rows `[B·(N+1), D]`, each image's run starting with [CLS].
 */

/**
 * `[CLS; patches] + pos` for every image: cls `[1, 1, D]`, patches `[B·N, D]`, pos `[N+1, D]`
 * → `[B·(N+1), D]`. Gradients: patches get their rows of dy, pos the sum over images, cls the
 * sum of the [CLS] rows.
 */
export function assembleTokens(
  cls: tf.Tensor,
  patches: tf.Tensor2D,
  pos: tf.Tensor2D,
  batch: number,
): tf.Tensor2D {
  const dim = patches.shape[1];
  const tokens = pos.shape[0];
  const n = tokens - 1;
  if (cls.size !== dim || pos.shape[1] !== dim) {
    throw new Error(
      `assembleTokens: cls [${cls.shape}], patches [${patches.shape}] and pos [${pos.shape}] widths differ`,
    );
  }
  if (patches.shape[0] !== batch * n) {
    throw new Error(
      `assembleTokens: ${patches.shape[0]} patch rows, expected ${batch} images × ${n} patches`,
    );
  }
  const clsShape = cls.shape;
  const f = tf.customGrad((c, p, e) => {
    const clsRows = tf.broadcastTo(tf.reshape(c as tf.Tensor, [1, 1, dim]), [batch, 1, dim]);
    const sequence = tf.concat([clsRows, tf.reshape(p as tf.Tensor, [batch, n, dim])], 1);
    return {
      value: tf.reshape(tf.add(sequence, e as tf.Tensor), [batch * tokens, dim]),
      gradFunc: (dy: tf.Tensor) =>
        tf.tidy(() => {
          const perImage = tf.reshape(dy, [batch, tokens, dim]);
          const dPos = tf.sum(perImage, 0);
          const dCls = tf.reshape(tf.slice(dPos, [0, 0], [1, dim]), clsShape);
          const dPatches = tf.reshape(tf.slice(perImage, [0, 1, 0], [batch, n, dim]), [batch * n, dim]);
          return [dCls, dPatches, dPos];
        }),
    };
  });
  return f(cls, patches, pos) as tf.Tensor2D;
}

/** The [CLS] row of every image: `[B·T, D]` → `[B, D]`. */
export function clsRows(x: tf.Tensor2D, batch: number): tf.Tensor2D {
  const [rows, dim] = x.shape;
  const tokens = rows / batch;
  if (!Number.isInteger(tokens)) throw new Error(`clsRows: ${rows} rows are not ${batch} equal sequences`);
  const f = tf.customGrad((t) => ({
    value: tf.reshape(
      tf.slice(tf.reshape(t as tf.Tensor, [batch, tokens, dim]), [0, 0, 0], [batch, 1, dim]),
      [batch, dim],
    ),
    gradFunc: (dy: tf.Tensor) =>
      tf.tidy(() =>
        tf.reshape(
          tf.pad(tf.reshape(dy, [batch, 1, dim]), [
            [0, 0],
            [0, tokens - 1],
            [0, 0],
          ]),
          [rows, dim],
        ),
      ),
  }));
  return f(x) as tf.Tensor2D;
}
