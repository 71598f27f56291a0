import * as tf from '@tensorflow/tfjs-core';

/**
 * DINO cross-entropy between the teacher's global views and every other student view (spec §5).
 *
 * Row layout of both logit tensors is view-major, as produced by the multi-crop forward:
 * [view 0 batch | view 1 batch | …]. The teacher sees only the first `numGlobal` views, so
 * teacher view i and student view i are the same crop and that pair is skipped.
 */
export interface DinoLossOptions {
  /** τs; the reference uses 0.1. */
  studentTemp: number;
  /** τt for the current epoch (the schedule lives outside the loss). */
  teacherTemp: number;
  /** V: global + local student views. */
  numViews: number;
  /** Views the teacher sees; they are the first student views. */
  numGlobal?: number;
  /**
   * Samples to average over. Defaults to this call's B; pass the full batch size when the
   * batch is split into micro-batches, so that the micro-batch losses (and gradients) sum
   * to the full-batch ones.
   */
  batchSize?: number;
}

/** Shape facts shared by the loss and its diagnostics, checked once. */
export interface ViewLayout {
  numViews: number;
  numGlobal: number;
  /** Samples per view in these logits. */
  batch: number;
  /** Prototypes (output dimension). */
  outDim: number;
  /** Cross-view pairs M = G·(V − 1). */
  pairs: number;
}

/** M = G·(V − 1): each teacher view against every student view but its own crop. */
export function crossViewPairs(numViews: number, numGlobal = 2): number {
  return numGlobal * (numViews - 1);
}

/**
 * mask[v][i] = 1 when student view v is paired with teacher view i. The same crop seen by
 * both networks is left out: DINO only asks the student to match the teacher on a
 * different view of the image.
 */
export function crossViewMask(numViews: number, numGlobal = 2): Float32Array {
  const mask = new Float32Array(numViews * numGlobal);
  for (let v = 0; v < numViews; v++)
    for (let i = 0; i < numGlobal; i++) mask[v * numGlobal + i] = v === i ? 0 : 1;
  return mask;
}

export function checkViewLayout(
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  center: tf.Tensor,
  opts: Pick<DinoLossOptions, 'numViews' | 'numGlobal' | 'studentTemp' | 'teacherTemp'>,
  fn = 'dinoLoss',
): ViewLayout {
  const numViews = opts.numViews;
  const numGlobal = opts.numGlobal ?? 2;
  if (!Number.isInteger(numViews) || numViews < 2)
    throw new Error(`${fn}: numViews must be an integer ≥ 2, got ${numViews}`);
  if (!Number.isInteger(numGlobal) || numGlobal < 1 || numGlobal > numViews)
    throw new Error(`${fn}: numGlobal must be an integer in [1, numViews=${numViews}], got ${numGlobal}`);
  for (const key of ['studentTemp', 'teacherTemp'] as const) {
    const t = opts[key];
    if (!(t > 0) || !Number.isFinite(t))
      throw new Error(`${fn}: ${key} must be a positive finite number, got ${t}`);
  }
  if (studentLogits.rank !== 2)
    throw new Error(`${fn}: studentLogits must be 2-D [V·B, K], got shape [${studentLogits.shape}]`);
  if (teacherLogits.rank !== 2)
    throw new Error(`${fn}: teacherLogits must be 2-D [G·B, K], got shape [${teacherLogits.shape}]`);
  const [studentRows, outDim] = studentLogits.shape as [number, number];
  const [teacherRows, teacherDim] = teacherLogits.shape as [number, number];
  if (teacherDim !== outDim)
    throw new Error(`${fn}: teacherLogits has ${teacherDim} columns but studentLogits has ${outDim}`);
  if (teacherRows === 0 || teacherRows % numGlobal !== 0)
    throw new Error(
      `${fn}: teacherLogits rows (${teacherRows}) must be a positive multiple of numGlobal (${numGlobal})`,
    );
  const batch = teacherRows / numGlobal;
  if (studentRows !== numViews * batch)
    throw new Error(
      `${fn}: studentLogits rows (${studentRows}) must equal numViews × B = ${numViews} × ${batch} (B from teacherLogits)`,
    );
  const centerOk =
    (center.rank === 1 && center.shape[0] === outDim) ||
    (center.rank === 2 && center.shape[0] === 1 && center.shape[1] === outDim);
  if (!centerOk)
    throw new Error(`${fn}: center must have shape [${outDim}] or [1, ${outDim}], got [${center.shape}]`);
  const pairs = crossViewPairs(numViews, numGlobal);
  if (pairs < 1)
    throw new Error(`${fn}: no cross-view pairs with numViews=${numViews}, numGlobal=${numGlobal}`);
  return { numViews, numGlobal, batch, outDim, pairs };
}

/** softmax((t − c)/τt): centered and sharpened teacher targets. Callers keep it off the gradient path. */
export function teacherProbabilities(
  teacherLogits: tf.Tensor,
  center: tf.Tensor,
  teacherTemp: number,
): tf.Tensor2D {
  return tf.tidy(() => tf.softmax(tf.mul(tf.sub(teacherLogits, center), 1 / teacherTemp)) as tf.Tensor2D);
}

/**
 * Student-view weights W = mask · P, one [B, K] block per student view: the sum of the
 * teacher distributions that view is compared with. One 2-D NN matmul, the fast path on wasm.
 */
function pairWeights(probsByView: tf.Tensor2D, layout: ViewLayout): tf.Tensor2D {
  return tf.tidy(() => {
    const mask = tf.tensor2d(crossViewMask(layout.numViews, layout.numGlobal), [
      layout.numViews,
      layout.numGlobal,
    ]);
    return tf.reshape(tf.matMul(mask, probsByView), [layout.numViews * layout.batch, layout.outDim]);
  });
}

/** Σ_k W[r,k] for each student row: the number of teacher views its view is paired with. */
function rowWeightTotals(layout: ViewLayout): tf.Tensor2D {
  const mask = crossViewMask(layout.numViews, layout.numGlobal);
  const totals = new Float32Array(layout.numViews * layout.batch);
  for (let v = 0; v < layout.numViews; v++) {
    let s = 0;
    for (let i = 0; i < layout.numGlobal; i++) s += mask[v * layout.numGlobal + i];
    totals.fill(s, v * layout.batch, (v + 1) * layout.batch);
  }
  return tf.tensor2d(totals, [totals.length, 1]);
}

/**
 * L = (1/M) Σ_{i, v≠i} mean_b( −Σ_k P_t[i] · log softmax(s_v/τs) ).
 *
 * Returns a scalar differentiable with respect to `studentLogits` only: the teacher side is a
 * constant captured by a custom gradient, so no gradient can reach the teacher even when its
 * logits were computed from trainable variables.
 */
export function dinoLoss(
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  center: tf.Tensor,
  opts: DinoLossOptions,
): tf.Scalar {
  const layout = checkViewLayout(studentLogits, teacherLogits, center, opts);
  const samples = opts.batchSize ?? layout.batch;
  if (!Number.isInteger(samples) || samples < 1)
    throw new Error(`dinoLoss: batchSize must be a positive integer, got ${samples}`);
  const norm = samples * layout.pairs;
  const invStudentTemp = 1 / opts.studentTemp;

  return tf.tidy(() => {
    const probs = teacherProbabilities(teacherLogits, center, opts.teacherTemp);
    const probsByView = tf.reshape(probs, [layout.numGlobal, layout.batch * layout.outDim]) as tf.Tensor2D;

    // The student logits are the only input of the custom op: the teacher targets enter as a
    // captured constant, so the tape has no path back to the teacher.
    const crossEntropy = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [student, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
      const logp = tf.logSoftmax(tf.mul(student, invStudentTemp));
      save([logp, probsByView]);
      const value = tf.div(tf.neg(tf.sum(tf.mul(pairWeights(probsByView, layout), logp))), norm) as tf.Scalar;
      return {
        value,
        // d/ds of −Σ W·logsoftmax(s/τs) is (softmax(s/τs)·Σ_k W − W)/τs per row.
        gradFunc: (dy: tf.Scalar, saved: tf.Tensor[]) =>
          tf.tidy(() => {
            const [savedLogp, savedProbs] = saved;
            const weights = pairWeights(savedProbs as tf.Tensor2D, layout);
            const diff = tf.sub(tf.mul(tf.exp(savedLogp), rowWeightTotals(layout)), weights);
            return tf.mul(diff, tf.mul(dy, invStudentTemp / norm));
          }),
      };
    });
    return crossEntropy(studentLogits);
  });
}
