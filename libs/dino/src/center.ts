import * as tf from '@tensorflow/tfjs-core';

/**
 * Centering of the teacher output (spec §5): an EMA of the batch-mean raw teacher logits,
 * subtracted before the teacher softmax so that no prototype can take over.
 *
 * All functions are pure: they return new [1, K] tensors and never dispose their inputs.
 * The batch mean must cover the whole optimizer batch (every micro-batch, every replica), so
 * the building blocks are a row sum that can be accumulated and `centerFromSum`.
 */

/** Zeros [1, K]: the reference initial center. */
export function initialCenter(outDim: number): tf.Tensor2D {
  if (!Number.isInteger(outDim) || outDim < 1)
    throw new Error(`initialCenter: outDim must be a positive integer, got ${outDim}`);
  return tf.zeros([1, outDim]);
}

/** Σ over rows of the raw teacher logits, [1, K]; add these up across micro-batches. */
export function teacherLogitSum(teacherLogits: tf.Tensor): tf.Tensor2D {
  if (teacherLogits.rank !== 2 || teacherLogits.shape[0] === 0)
    throw new Error(
      `teacherLogitSum: teacherLogits must be 2-D [rows > 0, K], got shape [${teacherLogits.shape}]`,
    );
  return tf.sum(teacherLogits, 0, true) as tf.Tensor2D;
}

/** Batch center from an accumulated row sum over `rows` teacher rows (all views, all samples). */
export function centerFromSum(sum: tf.Tensor, rows: number): tf.Tensor2D {
  if (!Number.isInteger(rows) || rows < 1)
    throw new Error(`centerFromSum: rows must be a positive integer, got ${rows}`);
  if (sum.rank > 2 || (sum.rank === 2 && sum.shape[0] !== 1))
    throw new Error(`centerFromSum: sum must have shape [K] or [1, K], got [${sum.shape}]`);
  return tf.tidy(() => tf.reshape(tf.div(sum, rows), [1, sum.size]) as tf.Tensor2D);
}

/** c ← m·c + (1 − m)·batch, as a new [1, K] tensor; `batch` is the step's batch center. */
export function updateCenter(center: tf.Tensor, batch: tf.Tensor, momentum = 0.9): tf.Tensor2D {
  if (!(momentum >= 0 && momentum <= 1))
    throw new Error(`updateCenter: momentum must be in [0, 1], got ${momentum}`);
  if (center.size !== batch.size || center.rank > 2 || batch.rank > 2)
    throw new Error(
      `updateCenter: center [${center.shape}] and batch center [${batch.shape}] must both be [K] or [1, K] with equal K`,
    );
  return tf.tidy(
    () =>
      tf.reshape(tf.add(tf.mul(center, momentum), tf.mul(batch, 1 - momentum)), [
        1,
        center.size,
      ]) as tf.Tensor2D,
  );
}
