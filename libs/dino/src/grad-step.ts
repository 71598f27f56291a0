import * as tf from '@tensorflow/tfjs-core';
import { multiCropForward } from './multi-crop';
import { dinoLoss } from './loss';
import { centerFromSum, teacherLogitSum, updateCenter } from './center';
import { teacherEntropy, teacherStudentKl } from './diagnostics';
import { clipGradients } from './optim/clip';
import { emaUpdate } from './ema';
import { isLastLayer } from './optim/param-groups';
import type { CropBatch, StepHyper, TrainState } from './step-types';

/**
 * `trainStep` split at the point where data-parallel replicas exchange data: first the
 * gradients, teacher-logit sum and loss terms of some micro-batches, then the update every
 * replica applies identically from the summed gradients and the whole batch's teacher sum.
 * computeGradients over all micro-batches followed by applyUpdate is the single-process step.
 */

/** A slice of rows of a `CropBatch`; `index` is its position in the whole batch's micro-batch list. */
export interface MicroBatch {
  start: number;
  rows: number;
  index: number;
}

export interface GradientResult {
  /** Σ over the micro-batches of ∂(loss · rows / totalBatch)/∂θ, by parameter name. */
  grads: Map<string, tf.Tensor>;
  /** Σ over the teacher rows (both global views) of the raw teacher logits, [1, K]. */
  teacherSum: tf.Tensor2D;
  /** This part's share of the batch loss and diagnostics (already weighted by rows / totalBatch). */
  loss: number;
  teacherEntropy: number;
  klTeacherStudent: number;
}

/** The micro-batch list `trainStep` uses for a batch: consecutive slices of `micro` rows (0 = all). */
export function microBatches(batchSize: number, microBatchSize: number): MicroBatch[] {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`microBatches: batchSize must be a positive integer, got ${batchSize}`);
  }
  const micro = microBatchSize > 0 ? Math.min(microBatchSize, batchSize) : batchSize;
  const out: MicroBatch[] = [];
  for (let start = 0, index = 0; start < batchSize; start += micro, index++) {
    out.push({ start, rows: Math.min(micro, batchSize - start), index });
  }
  return out;
}

function cropSlice(batch: CropBatch, view: number, start: number, rows: number): tf.Tensor4D {
  const s = batch.sizes[view];
  const c = batch.channels ?? 3;
  const per = s * s * c;
  if ((start + rows) * per > batch.views[view].length) {
    throw new Error(
      `view ${view} has ${batch.views[view].length / per} images, rows ${start}..${start + rows} asked`,
    );
  }
  return tf.tensor4d(batch.views[view].subarray(start * per, (start + rows) * per), [rows, s, s, c]);
}

/**
 * Forward + backward over `micros` (row ranges of `batch`), weighting each by rows/totalBatch so
 * that the parts of all replicas add up to the whole batch's gradient. The state is not changed.
 */
export function computeGradients(
  state: TrainState,
  batch: CropBatch,
  hyper: StepHyper,
  micros: readonly MicroBatch[],
  totalBatch: number,
): GradientResult {
  const { config } = state;
  const trainableEntries = [...state.student].filter(([, v]) => v.trainable);
  const trainable = trainableEntries.map(([, v]) => v);
  // variableGrads keys gradients by the engine's variable name, not by our parameter name.
  const paramNameOf = new Map(trainableEntries.map(([name, v]) => [v.name, name]));
  const temps = {
    studentTemp: config.loss.studentTemp,
    teacherTemp: hyper.teacherTemp,
    numViews: batch.views.length,
  };

  let grads: Map<string, tf.Tensor> | null = null;
  let teacherSum = tf.zeros([1, config.head.outDim]) as tf.Tensor2D;
  let loss = 0;
  let entropy = 0;
  let kl = 0;
  try {
    for (const { start, rows, index } of micros) {
      const weight = rows / totalBatch;
      const crops = batch.views.map((_, v) => cropSlice(batch, v, start, rows));
      try {
        const teacherLogits = tf.tidy(() =>
          multiCropForward(state.teacher, crops.slice(0, 2), { training: false, config }),
        );
        try {
          const { value, grads: partGrads } = tf.variableGrads(() => {
            const studentLogits = multiCropForward(state.student, crops, {
              training: true,
              config,
              seed: config.train.seed,
              step: state.step,
              microBatch: index,
            });
            const l = dinoLoss(studentLogits, teacherLogits, state.center, temps);
            entropy += weight * teacherEntropy(teacherLogits, state.center, hyper.teacherTemp);
            kl += weight * teacherStudentKl(studentLogits, teacherLogits, state.center, temps);
            return tf.mul(l, weight) as tf.Scalar;
          }, trainable);
          loss += value.dataSync()[0];
          value.dispose();
          const nextSum = tf.tidy(() => tf.add(teacherSum, teacherLogitSum(teacherLogits))) as tf.Tensor2D;
          teacherSum.dispose();
          teacherSum = nextSum;
          const named = Object.entries(partGrads).map(([v, g]) => [paramNameOf.get(v)!, g] as const);
          if (grads === null) {
            grads = new Map(named);
          } else {
            for (const [name, g] of named) {
              const prev = grads.get(name);
              grads.set(name, prev ? tf.add(prev, g) : g);
              if (prev) {
                prev.dispose();
                g.dispose();
              }
            }
          }
        } finally {
          teacherLogits.dispose();
        }
      } finally {
        tf.dispose(crops);
      }
    }
    const result = {
      grads: grads ?? new Map(),
      teacherSum,
      loss,
      teacherEntropy: entropy,
      klTeacherStudent: kl,
    };
    grads = null;
    return result;
  } catch (e) {
    teacherSum.dispose();
    throw e;
  } finally {
    if (grads) tf.dispose([...grads.values()]);
  }
}

/**
 * The optimizer step of `trainStep` from gradients and a teacher-logit sum that already cover
 * the whole batch of `totalBatch` images: clip, AdamW, EMA teacher, center; then the step moves on by the state's stride.
 * The inputs are read, not disposed. Returns the largest per-tensor gradient norm before clipping.
 */
export function applyUpdate(
  state: TrainState,
  grads: ReadonlyMap<string, tf.Tensor>,
  teacherSum: tf.Tensor2D,
  hyper: StepHyper,
  totalBatch: number,
): number {
  const { config } = state;
  const { grads: clipped, maxNorm } = clipGradients(grads, config.optim.clipGrad);
  try {
    // First epochs: the head's last layer is skipped entirely (spec §7.4), not given a zero
    // gradient, which would still decay it and move its moments. The reference freezes it for the
    // first epoch because that stabilises early training.
    const skip = hyper.freezeLastLayer ? isLastLayer : undefined;
    state.optimizer.step(clipped, { lr: hyper.lr, weightDecay: hyper.weightDecay, skip });
  } finally {
    tf.dispose([...clipped.values()]);
  }
  emaUpdate(state.teacher, state.student, hyper.momentum);
  // The teacher saw both global views of every image: 2 · totalBatch rows.
  const newCenter = tf.tidy(() =>
    updateCenter(state.center, centerFromSum(teacherSum, 2 * totalBatch), config.loss.centerMomentum),
  );
  state.center.dispose();
  state.center = newCenter;
  state.step += state.stride;
  return maxNorm;
}
