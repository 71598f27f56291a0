import type * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import type { AdamW } from './optim/adamw';
import type { Params } from './params';

/*
 * What a training step works on. Kept apart from train-step.ts so that grad-step.ts, which
 * train-step.ts builds on, can name them without importing its own caller.
 */

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

export interface TrainState {
  config: RunConfig;
  student: Params;
  teacher: Params;
  optimizer: AdamW;
  /** Teacher-logit EMA center, [1, K]; replaced (old one disposed) after every step. */
  center: tf.Tensor2D;
  step: number;
}
