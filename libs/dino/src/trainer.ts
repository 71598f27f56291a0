import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import type { CropBatch, StepHyper, StepLane, TrainState } from './step-types';
import { trainStep, type StepResult } from './train-step';
import { checkpointOf, createTrainState, disposeTrainState, HyperSchedule } from './train-state';
import type { Params } from './params';

export interface StepMetrics extends StepResult {
  step: number;
  epoch: number;
  lr: number;
  weightDecay: number;
  momentum: number;
  teacherTemp: number;
  imagesPerSecond: number;
  stepMs: number;
  backend: string;
  numTensors: number;
}

/**
 * Owns a run's training state (student, teacher, optimizer, center, step) and its schedules.
 * Framework-free: callers feed batches and persist the checkpoint blobs wherever they like.
 */
export class DinoTrainer {
  readonly itersPerEpoch: number;
  readonly totalSteps: number;
  private readonly schedule: HyperSchedule;

  private constructor(
    private readonly state: TrainState,
    readonly datasetSize: number,
  ) {
    this.schedule = new HyperSchedule(state.config, datasetSize);
    this.itersPerEpoch = this.schedule.itersPerEpoch;
    this.totalSteps = this.schedule.totalSteps;
  }

  /** A fresh run initialised from config.train.seed. */
  static create(config: RunConfig, datasetSize: number, lane?: StepLane): DinoTrainer {
    return new DinoTrainer(createTrainState(config, undefined, lane), datasetSize);
  }

  /** Resumes from checkpoint blobs written by `checkpointFiles`; `lane` picks the steps it trains. */
  static restore(
    config: RunConfig,
    datasetSize: number,
    files: Record<string, Uint8Array>,
    lane?: StepLane,
  ): DinoTrainer {
    return new DinoTrainer(createTrainState(config, files, lane), datasetSize);
  }

  get config(): RunConfig {
    return this.state.config;
  }
  get step(): number {
    return this.state.step;
  }
  /** How far the step moves per trained batch (a slice's lane), 1 otherwise. */
  get stride(): number {
    return this.state.stride;
  }
  get epoch(): number {
    return Math.floor(this.state.step / this.itersPerEpoch);
  }
  get student(): Params {
    return this.state.student;
  }
  get teacher(): Params {
    return this.state.teacher;
  }
  get center(): tf.Tensor2D {
    return this.state.center;
  }

  hyperAt(step: number): StepHyper {
    return this.schedule.at(step);
  }

  trainStep(batch: CropBatch): StepMetrics {
    if (batch.batch !== this.config.train.batchSize) {
      throw new Error(
        `batch has ${batch.batch} images, config.train.batchSize is ${this.config.train.batchSize}`,
      );
    }
    const step = this.state.step;
    const hyper = this.hyperAt(step);
    const t0 = performance.now();
    const result = trainStep(this.state, batch, hyper);
    const stepMs = performance.now() - t0;
    return {
      ...result,
      step,
      epoch: Math.floor(step / this.itersPerEpoch),
      lr: hyper.lr,
      weightDecay: hyper.weightDecay,
      momentum: hyper.momentum,
      teacherTemp: hyper.teacherTemp,
      imagesPerSecond: (batch.batch * 1000) / stepMs,
      stepMs,
      backend: tf.getBackend(),
      numTensors: tf.memory().numTensors,
    };
  }

  checkpointFiles(): Record<string, Uint8Array> {
    return checkpointOf(this.state, this.datasetSize);
  }

  dispose(): void {
    disposeTrainState(this.state);
  }
}
