import * as tf from '@tensorflow/tfjs-core';

/** Sizes of one (batched, broadcast) product op(A)·op(B), as every matmul kernel here needs them. */
export interface MatMulGeometry {
  transposeA: boolean;
  transposeB: boolean;
  m: number;
  n: number;
  k: number;
  outShape: number[];
  batch: number;
  batchA: number;
  batchB: number;
  outerA: number[];
  outerB: number[];
  outer: number[];
}

/**
 * Checks dtypes, ranks and inner sizes with the messages tfjs itself gives, and works out the
 * broadcast batch. `kernel` names the caller in the dtype error.
 */
export function matMulGeometry(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
  kernel: string,
): MatMulGeometry {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') {
    throw new Error(`${kernel} supports float32 only, got ${a.dtype} and ${b.dtype}`);
  }
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new Error(`matMul needs rank ≥ 2 operands, got [${a.shape}] and [${b.shape}]`);
  const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (k !== kb) {
    throw new Error(
      `Error in matMul: inner shapes (${k}) and (${kb}) of Tensors with shapes ${a.shape} and ${b.shape} ` +
        `and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  return {
    transposeA,
    transposeB,
    m,
    n,
    k,
    outShape: [...outer, m, n],
    batch: tf.util.sizeFromShape(outer),
    batchA: tf.util.sizeFromShape(outerA),
    batchB: tf.util.sizeFromShape(outerB),
    outerA,
    outerB,
    outer,
  };
}
