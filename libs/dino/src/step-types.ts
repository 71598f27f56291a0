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
  /** The global step (batch index) this state trains next. */
  step: number;
  /** How far `step` moves per trained batch: 1, or a round's slice count for a slice's lane. */
  stride: number;
}

/**
 * The global steps one trainer takes: `start`, `start + stride`, … A slice i of N in a round that
 * starts at step b trains the batches b + i, b + i + N, …, so N slices share a round's batches
 * without overlap and each draws the same batches, schedules and drop-path masks that a single
 * trainer would have drawn at those steps.
 */
export interface StepLane {
  start: number;
  stride: number;
}
