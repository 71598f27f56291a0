import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import type { AdamW } from './optim/adamw';
import type { Params } from './params';
import { applyUpdate, computeGradients, microBatches } from './grad-step';

/** One multi-crop batch: views ordered global1, global2, local1..N; each NHWC [batch, size, size, C]. */
export interface CropBatch {
  views: Float32Array[];
  sizes: number[];
  batch: number;
  channels?: number;
}

/** Hyper-parameters of this iteration, read from the precomputed schedules. */
export interface StepHyper {
  lr: number;
  weightDecay: number;
  momentum: number;
  teacherTemp: number;
  freezeLastLayer: boolean;
}

export interface StepResult {
  loss: number;
  teacherEntropy: number;
  klTeacherStudent: number;
  /** Largest per-tensor gradient norm before clipping. */
  maxGradNorm: number;
}

export class NonFiniteLossError extends Error {
  constructor(
    readonly step: number,
    readonly value: number,
  ) {
    super(
      `loss is ${value} at step ${step}; the run is stopped and no parameter was updated. ` +
        'Lower optim.lr, lower loss.teacherTemp or raise optim.freezeLastLayer (spec §19).',
    );
    this.name = 'NonFiniteLossError';
  }
}

export interface TrainState {
  config: RunConfig;
  student: Params;
  teacher: Params;
  optimizer: AdamW;
  /** Teacher-logit EMA center, [1, K]; replaced (old one disposed) after every step. */
  center: tf.Tensor2D;
  step: number;
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
    if (!Number.isFinite(part.loss)) throw new NonFiniteLossError(state.step, part.loss);
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
