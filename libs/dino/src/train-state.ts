import * as tf from '@tensorflow/tfjs-core';
import { itersPerEpochFor, type RunConfig } from '@dinoq/config';
import { cloneParams, initDinoParams, paramShapes } from './init';
import { AdamW } from './optim/adamw';
import { initialCenter } from './center';
import { buildSchedules, type Schedules } from './schedules';
import { decodeCheckpoint, encodeCheckpoint, type CheckpointFiles } from './checkpoint';
import type { StepHyper, StepLane, TrainState } from './step-types';
import type { Params } from './params';

/**
 * Building, checkpointing and disposing a run's training state, and reading its schedules: one
 * implementation shared by DinoTrainer and every data-parallel replica, so that they start from
 * the same values and read the same hyper-parameters.
 */

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

/** The lane a state at `step` trains when none is given: every step from there on. */
function laneFrom(step: number, lane: StepLane | undefined): StepLane {
  if (!lane) return { start: step, stride: 1 };
  if (!Number.isInteger(lane.stride) || lane.stride < 1)
    throw new Error(`lane stride must be a positive integer, got ${lane.stride}`);
  if (!Number.isInteger(lane.start) || lane.start < step)
    throw new Error(`lane start ${lane.start} is before the state's step ${step}`);
  return lane;
}

/**
 * A run's training state from the seed, or from checkpoint blobs; `lane` makes it train the steps
 * start, start + stride, … instead of every step from the checkpoint's.
 */
export function createTrainState(
  config: RunConfig,
  files?: Readonly<Record<string, Uint8Array>>,
  lane?: StepLane,
): TrainState {
  const student = initDinoParams(config, config.train.seed);
  if (!files) {
    const teacher = cloneParams(student, false);
    const optimizer = new AdamW(student, optimizerOptions(config));
    const center = initialCenter(config.head.outDim);
    const { start, stride } = laneFrom(0, lane);
    return { config, student, teacher, optimizer, center, step: start, stride };
  }
  const ckpt = decodeCheckpoint(files, paramShapes(config));
  assignAll(student, ckpt.student);
  const teacher = cloneParams(student, false);
  assignAll(teacher, ckpt.teacher);
  const optimizer = new AdamW(student, optimizerOptions(config));
  optimizer.loadState(ckpt.optimizer.moments, ckpt.optimizer.stepCounts);
  const center = tf.tensor2d(ckpt.center, [1, config.head.outDim]);
  const { start, stride } = laneFrom(ckpt.step, lane);
  return { config, student, teacher, optimizer, center, step: start, stride };
}

export function disposeTrainState(state: TrainState): void {
  for (const v of state.student.values()) v.dispose();
  for (const v of state.teacher.values()) v.dispose();
  state.optimizer.dispose();
  state.center.dispose();
}

export function checkpointOf(state: TrainState, datasetSize: number): CheckpointFiles {
  const { student, teacher, optimizer, center, step, config } = state;
  return encodeCheckpoint({
    student,
    teacher,
    optimizer: { moments: optimizer.state(), stepCounts: optimizer.stepCounts() },
    center,
    step,
    epoch: Math.floor(step / itersPerEpochFor(datasetSize, config.train.batchSize)),
    config,
    rng: { seed: config.train.seed, step },
    backend: tf.getBackend(),
  });
}

export interface ChecksumParts {
  student: ReadonlyMap<string, tf.Tensor>;
  teacher: ReadonlyMap<string, tf.Tensor>;
  center: tf.Tensor;
  step: number;
  /** Optimizer moments, where the caller can reach them. */
  moments?: Iterable<tf.Tensor>;
}

/**
 * FNV-1a over the bit patterns of every student and teacher parameter, the center and the
 * optimizer moments when given: equal strings mean bit-identical replicas.
 */
export function stateChecksum(state: ChecksumParts): string {
  let h = 0x811c9dc5;
  const mix = (t: tf.Tensor) => {
    const bits = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
    for (let i = 0; i < bits.length; i++) h = Math.imul(h ^ bits[i], 0x01000193) >>> 0;
  };
  for (const v of state.student.values()) mix(v);
  for (const v of state.teacher.values()) mix(v);
  mix(state.center);
  for (const m of state.moments ?? []) mix(m);
  return `${h.toString(16).padStart(8, '0')}@${state.step}`;
}

/** The schedules' values at a step. */
export class HyperSchedule {
  readonly itersPerEpoch: number;
  readonly totalSteps: number;
  private readonly schedules: Schedules;

  constructor(config: RunConfig, datasetSize: number) {
    this.itersPerEpoch = itersPerEpochFor(datasetSize, config.train.batchSize);
    this.schedules = buildSchedules(config, this.itersPerEpoch);
    this.totalSteps = this.schedules.lr.length;
  }

  at(step: number): StepHyper {
    const s = Math.min(step, this.totalSteps - 1);
    const { teacherTemp, teacherTempPer } = this.schedules;
    const t = teacherTempPer === 'step' ? s : Math.floor(s / this.itersPerEpoch);
    return {
      lr: this.schedules.lr[s],
      weightDecay: this.schedules.wd[s],
      momentum: this.schedules.momentum[s],
      teacherTemp: teacherTemp[Math.min(t, teacherTemp.length - 1)],
      freezeLastLayer: s < this.schedules.freezeLastLayerSteps,
    };
  }
}
