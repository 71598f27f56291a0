import * as tf from '@tensorflow/tfjs-core';
import { applyUpdate, computeGradients, microBatches } from './grad-step';
import { NonFiniteLossError } from './non-finite-loss';
import type { CropBatch, StepHyper, TrainState } from './step-types';

export interface StepResult {
  loss: number;
  teacherEntropy: number;
  klTeacherStudent: number;
  /** Largest per-tensor gradient norm before clipping. */
  maxGradNorm: number;
}

/**
 * One DINO iteration (spec §1, §7.5) with gradient accumulation over micro-batches.
 *
 * The loss is a mean of per-image terms and, within a step, the teacher and the center are
 * constants, so summing micro-batch gradients each weighted by rows/batch gives exactly the
 * full-batch gradient; the center is updated once from the teacher-logit sum over the whole
 * batch. Nothing is written to any parameter before the loss of the whole batch is known
 * finite, so a NaN leaves the state as it was.
 */
export function trainStep(state: TrainState, batch: CropBatch, hyper: StepHyper): StepResult {
  const B = batch.batch;
  const part = computeGradients(state, batch, hyper, microBatches(B, state.config.train.microBatchSize), B);
  try {
    if (!Number.isFinite(part.loss)) throw new NonFiniteLossError(state.step, part.loss, state.config);
    const maxGradNorm = applyUpdate(state, part.grads, part.teacherSum, hyper, B);
    return {
      loss: part.loss,
      teacherEntropy: part.teacherEntropy,
      klTeacherStudent: part.klTeacherStudent,
      maxGradNorm,
    };
  } finally {
    part.teacherSum.dispose();
    tf.dispose([...part.grads.values()]);
  }
}
