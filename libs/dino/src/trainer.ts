import * as tf from '@tensorflow/tfjs-core';
import { itersPerEpochFor, type RunConfig } from '@dinoq/config';
import { initDinoParams, cloneParams, paramShapes } from './init';
import { AdamW } from './optim/adamw';
import { buildSchedules, type Schedules } from './schedules';
import { trainStep, type CropBatch, type StepHyper, type StepResult, type TrainState } from './train-step';
import { encodeCheckpoint, decodeCheckpoint } from './checkpoint';
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
  private readonly schedules: Schedules;

  private constructor(
    private readonly state: TrainState,
    readonly datasetSize: number,
  ) {
    this.itersPerEpoch = itersPerEpochFor(datasetSize, state.config.train.batchSize);
    this.totalSteps = this.itersPerEpoch * state.config.train.epochs;
    this.schedules = buildSchedules(state.config, this.itersPerEpoch);
  }

  /** A fresh run initialised from config.train.seed. */
  static create(config: RunConfig, datasetSize: number): DinoTrainer {
    const student = initDinoParams(config, config.train.seed);
    const teacher = cloneParams(student, false);
    const optimizer = new AdamW(student, optimizerOptions(config));
    const center = tf.zeros([1, config.head.outDim]) as tf.Tensor2D;
    return new DinoTrainer({ config, student, teacher, optimizer, center, step: 0 }, datasetSize);
  }

  /** Resumes from checkpoint blobs written by `checkpointFiles`. */
  static restore(config: RunConfig, datasetSize: number, files: Record<string, Uint8Array>): DinoTrainer {
    const ckpt = decodeCheckpoint(files, paramShapes(config));
    const student = initDinoParams(config, config.train.seed);
    assignAll(student, ckpt.student);
    const teacher = cloneParams(student, false);
    assignAll(teacher, ckpt.teacher);
    const optimizer = new AdamW(student, optimizerOptions(config));
    optimizer.loadState(ckpt.optimizer.moments, ckpt.optimizer.stepCounts);
    const center = tf.tensor2d(ckpt.center, [1, config.head.outDim]);
    return new DinoTrainer({ config, student, teacher, optimizer, center, step: ckpt.step }, datasetSize);
  }

  get config(): RunConfig {
    return this.state.config;
  }
  get step(): number {
    return this.state.step;
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
    const s = Math.min(step, this.totalSteps - 1);
    const epoch = Math.floor(s / this.itersPerEpoch);
    return {
      lr: this.schedules.lr[s],
      weightDecay: this.schedules.wd[s],
      momentum: this.schedules.momentum[s],
      teacherTemp: this.schedules.teacherTemp[Math.min(epoch, this.schedules.teacherTemp.length - 1)],
      freezeLastLayer: epoch < this.config.optim.freezeLastLayer,
    };
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
    const { student, teacher, optimizer, center, step, config } = this.state;
    return encodeCheckpoint({
      student,
      teacher,
      optimizer: { moments: optimizer.state(), stepCounts: optimizer.stepCounts() },
      center,
      step,
      epoch: this.epoch,
      config,
      rng: { seed: config.train.seed, step },
      backend: tf.getBackend(),
    });
  }

  dispose(): void {
    for (const v of this.state.student.values()) v.dispose();
    for (const v of this.state.teacher.values()) v.dispose();
    this.state.optimizer.dispose();
    this.state.center.dispose();
  }
}

function optimizerOptions(config: RunConfig) {
  return { beta1: config.optim.beta1, beta2: config.optim.beta2, eps: config.optim.eps };
}

function assignAll(params: Params, values: Map<string, Float32Array>): void {
  for (const [name, v] of params) {
    const data = values.get(name);
    if (!data) throw new Error(`checkpoint has no tensor "${name}"`);
    const t = tf.tensor(data, v.shape);
    v.assign(t);
    t.dispose();
  }
}
