import * as tf from '@tensorflow/tfjs-core';
import { checkViewLayout, type DinoLossOptions, type ViewLayout } from './loss';

/**
 * Collapse signals (spec §5, §16): uniform collapse drives the teacher entropy to ln K,
 * one-hot collapse drives it to 0, and both drive KL(P_t ‖ P_s) to 0. Logged, never trained
 * on: each function reads its numbers back from the backend, so call them at logging time,
 * outside any gradient computation.
 */

type TempOptions = Pick<DinoLossOptions, 'studentTemp' | 'teacherTemp' | 'numViews' | 'numGlobal'>;

function teacherLogProbs(teacherLogits: tf.Tensor, center: tf.Tensor, teacherTemp: number): tf.Tensor {
  return tf.logSoftmax(tf.mul(tf.sub(teacherLogits, center), 1 / teacherTemp));
}

/** −Σ_rows Σ_k P_t log P_t, as a scalar tensor. */
function entropySum(logPt: tf.Tensor): tf.Tensor {
  return tf.neg(tf.sum(tf.mul(tf.exp(logPt), logPt)));
}

/** Σ over cross-view pairs and samples of KL(P_t[i] ‖ P_s[v]), as a scalar tensor. */
function klSum(
  studentLogits: tf.Tensor,
  logPt: tf.Tensor,
  studentTemp: number,
  layout: ViewLayout,
): tf.Tensor {
  const { numViews, numGlobal, batch, outDim } = layout;
  const logPs = tf.reshape(tf.logSoftmax(tf.mul(studentLogits, 1 / studentTemp)), [numViews, batch, outDim]);
  // Elementwise log-ratios rather than CE − H, so that a KL near 0 is not lost in the
  // rounding of two nearly equal large numbers. The loop is over the (two) teacher views.
  const parts: tf.Tensor[] = [];
  for (let i = 0; i < numGlobal; i++) {
    const logPti = tf.reshape(tf.slice(logPt, [i * batch, 0], [batch, outDim]), [1, batch, outDim]);
    const perView = tf.sum(tf.mul(tf.exp(logPti), tf.sub(logPti, logPs)), [1, 2]);
    const otherViews = tf.tensor1d(Array.from({ length: numViews }, (_, v) => (v === i ? 0 : 1)));
    parts.push(tf.sum(tf.mul(perView, otherViews)));
  }
  return tf.addN(parts);
}

function checkTeacher(teacherLogits: tf.Tensor, center: tf.Tensor, teacherTemp: number): void {
  if (teacherLogits.rank !== 2 || teacherLogits.shape[0] === 0)
    throw new Error(
      `teacherEntropy: teacherLogits must be 2-D [rows > 0, K], got shape [${teacherLogits.shape}]`,
    );
  const k = teacherLogits.shape[1];
  if (center.size !== k || center.rank > 2)
    throw new Error(`teacherEntropy: center must have shape [${k}] or [1, ${k}], got [${center.shape}]`);
  if (!(teacherTemp > 0) || !Number.isFinite(teacherTemp))
    throw new Error(`teacherEntropy: teacherTemp must be a positive finite number, got ${teacherTemp}`);
}

/** H(P_t) in nats, mean over the teacher rows. */
export function teacherEntropy(teacherLogits: tf.Tensor, center: tf.Tensor, teacherTemp: number): number {
  checkTeacher(teacherLogits, center, teacherTemp);
  const sum = tf.tidy(() => entropySum(teacherLogProbs(teacherLogits, center, teacherTemp)));
  const value = sum.dataSync()[0];
  sum.dispose();
  return value / teacherLogits.shape[0];
}

/** KL(P_t ‖ P_s) in nats, averaged over the loss's cross-view pairs and the samples. */
export function teacherStudentKl(
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  center: tf.Tensor,
  opts: TempOptions,
): number {
  const layout = checkViewLayout(studentLogits, teacherLogits, center, opts, 'teacherStudentKl');
  const sum = tf.tidy(() =>
    klSum(studentLogits, teacherLogProbs(teacherLogits, center, opts.teacherTemp), opts.studentTemp, layout),
  );
  const value = sum.dataSync()[0];
  sum.dispose();
  return value / (layout.batch * layout.pairs);
}
