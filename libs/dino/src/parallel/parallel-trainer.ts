import * as os from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { RunConfig } from '@dinoq/config';
import { DinoTrainer, type StepMetrics } from '../trainer';
import { NonFiniteLossError } from '../non-finite-loss';
import type { CropBatch, StepLane } from '../step-types';
import type { BackendInfo } from '../backend/select-backend';
import { microBatches, type MicroBatch } from '../grad-step';
import { HyperSchedule, stateChecksum } from '../train-state';
import { ThreadChannel } from '@dinoq/threads';
import type { ReplicaInit, ReplicaReply, ReplicaRequestBody } from './protocol';
import { spawnReplica } from './spawn-replica';
import { installNativeKernels, nativeKernelsInstalled } from '../backend/native-kernels';

/**
 * Data-parallel training over worker threads, with the surface of `DinoTrainer` made async.
 *
 * Each replica holds the whole training state. Per step the batch's micro-batches are dealt out
 * in contiguous runs, each replica returns its gradients (already weighted by its share of the
 * images, so their sum is the whole batch's gradient, as in gradient accumulation) and its
 * teacher-logit sum; this thread adds them up in replica order and sends the sums back, and
 * every replica applies the same clip + AdamW + EMA + center update. Replicas therefore stay
 * bit-identical (`replicaChecksums`), and the result equals a single trainer's up to the order
 * of float additions.
 *
 * Each micro-batch keeps its index in the whole batch's list, so drop-path masks are the ones a
 * single trainer draws. When there are fewer micro-batches than replicas, micro-batches are
 * shrunk to ⌈batch / replicas⌉ rows, which changes those masks (not their distribution).
 */

export interface ParallelOptions {
  /** Worker threads holding a replica each; 1 trains in this thread with a plain DinoTrainer. */
  replicas?: number;
  /** Backend each replica selects (`selectBackend`); default automatic. */
  backend?: string;
  /** The steps to train (a slice's lane); default every step from the start or the checkpoint's. */
  lane?: StepLane;
  /**
   * OpenBLAS threads per process (one setting shared by every thread); default
   * max(1, ⌊cores / replicas⌋) with replicas, and left as it is without.
   */
  blasThreads?: number;
}

/** Where the time of a data-parallel step went (absent for a single trainer). */
export interface ReplicaTimings {
  /** Forward + backward of each replica, in replica order. */
  computeMs: number[];
  /** Slowest replica's copy of its gradients out of its tensors. */
  packMs: number;
  /** Summing the replicas' gradients in this thread. */
  sumMs: number;
  /** Slowest replica's optimizer update (clip, AdamW, EMA, center, gradient upload). */
  applyMs: number;
  /** The rest of the step: sharing the batch, moving gradients between threads, waiting. */
  exchangeMs: number;
}

export interface ParallelStepMetrics extends StepMetrics {
  timings?: ReplicaTimings;
}

/** What a training loop needs from a trainer, whether it runs here or in replicas. */
export interface ReplicatedTrainer {
  readonly replicas: number;
  readonly config: RunConfig;
  readonly datasetSize: number;
  readonly itersPerEpoch: number;
  readonly totalSteps: number;
  readonly step: number;
  /** How far `step` moves per trained batch: 1, or the stride of a slice's lane. */
  readonly stride: number;
  readonly epoch: number;
  /** What the (first) replica runs on. */
  readonly backendInfo: BackendInfo | null;
  trainStep(batch: CropBatch): Promise<ParallelStepMetrics>;
  checkpointFiles(): Promise<Record<string, Uint8Array>>;
  /** One checksum per replica over all state; equal strings mean bit-identical replicas. */
  replicaChecksums(): Promise<string[]>;
  dispose(): Promise<void>;
}

/** A DinoTrainer in this thread behind the async surface. */
class LocalTrainer implements ReplicatedTrainer {
  readonly replicas = 1;
  constructor(
    private readonly trainer: DinoTrainer,
    readonly backendInfo: BackendInfo | null,
  ) {}
  get config() {
    return this.trainer.config;
  }
  get datasetSize() {
    return this.trainer.datasetSize;
  }
  get itersPerEpoch() {
    return this.trainer.itersPerEpoch;
  }
  get totalSteps() {
    return this.trainer.totalSteps;
  }
  get step() {
    return this.trainer.step;
  }
  get stride() {
    return this.trainer.stride;
  }
  get epoch() {
    return this.trainer.epoch;
  }
  async trainStep(batch: CropBatch): Promise<StepMetrics> {
    return this.trainer.trainStep(batch);
  }
  async checkpointFiles(): Promise<Record<string, Uint8Array>> {
    return this.trainer.checkpointFiles();
  }
  async replicaChecksums(): Promise<string[]> {
    // The optimizer moments are private to DinoTrainer, so this one covers the networks and center.
    const { student, teacher, center, step } = this.trainer;
    return [stateChecksum({ student, teacher, center, step })];
  }
  async dispose(): Promise<void> {
    this.trainer.dispose();
  }
}

/** One replica's worker thread, with replies checked against the type each request expects. */
class ReplicaHandle {
  private readonly channel: ThreadChannel<ReplicaReply>;

  constructor(
    readonly index: number,
    worker: Worker,
  ) {
    this.channel = new ThreadChannel(`replica ${index}`, worker);
  }

  async request<T extends ReplicaReply['type']>(
    msg: ReplicaRequestBody,
    transfer: ArrayBuffer[] = [],
    expect?: T,
  ): Promise<Extract<ReplicaReply, { type: T }>> {
    const reply = await this.channel.request(msg, transfer);
    if (expect && reply.type !== expect)
      throw new Error(`replica ${this.index}: expected ${expect}, got ${reply.type}`);
    return reply as Extract<ReplicaReply, { type: T }>;
  }

  terminate(): Promise<void> {
    return this.channel.close();
  }
}

/** Contiguous runs of micro-batches per replica, as even as the micro-batch count allows. */
export function assignMicroBatches(
  batchSize: number,
  microBatchSize: number,
  replicas: number,
): Array<{ start: number; rows: number; micros: MicroBatch[] }> {
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new Error(`replicas must be a positive integer, got ${replicas}`);
  }
  if (replicas > batchSize) throw new Error(`replicas (${replicas}) exceed the batch size (${batchSize})`);
  let micros = microBatches(batchSize, microBatchSize);
  if (micros.length < replicas) micros = microBatches(batchSize, Math.ceil(batchSize / replicas));
  const out: Array<{ start: number; rows: number; micros: MicroBatch[] }> = [];
  let next = 0;
  for (let r = 0; r < replicas; r++) {
    const count =
      Math.floor((micros.length * (r + 1)) / replicas) - Math.floor((micros.length * r) / replicas);
    const mine = micros.slice(next, next + count);
    next += count;
    const start = mine[0].start;
    const rows = mine.reduce((n, m) => n + m.rows, 0);
    out.push({ start, rows, micros: mine.map((m) => ({ ...m, start: m.start - start })) });
  }
  return out;
}

function shareOf(
  batch: CropBatch,
  start: number,
  rows: number,
): { share: CropBatch; transfer: ArrayBuffer[] } {
  const c = batch.channels ?? 3;
  const views = batch.views.map((v, i) => {
    const per = batch.sizes[i] * batch.sizes[i] * c;
    return v.slice(start * per, (start + rows) * per);
  });
  return {
    share: { views, sizes: batch.sizes, batch: rows, channels: batch.channels },
    transfer: views.map((v) => v.buffer as ArrayBuffer),
  };
}

export class DataParallelTrainer implements ReplicatedTrainer {
  private readonly schedule: HyperSchedule;
  private readonly plan: ReturnType<typeof assignMicroBatches>;
  private currentStep: number;
  private lastNumTensors = 0;
  private broken: Error | null = null;

  private constructor(
    readonly config: RunConfig,
    readonly datasetSize: number,
    private readonly handles: ReplicaHandle[],
    readonly backendInfo: BackendInfo,
    step: number,
    readonly stride: number,
  ) {
    this.schedule = new HyperSchedule(config, datasetSize);
    this.plan = assignMicroBatches(config.train.batchSize, config.train.microBatchSize, handles.length);
    this.currentStep = step;
  }

  /** A fresh run; replicas = 1 gives a plain DinoTrainer in this thread (select its backend first). */
  static create(
    config: RunConfig,
    datasetSize: number,
    opts: ParallelOptions = {},
  ): Promise<ReplicatedTrainer> {
    return DataParallelTrainer.start(config, datasetSize, undefined, opts);
  }

  /** Resumes from checkpoint blobs written by `checkpointFiles` (of either trainer). */
  static restore(
    config: RunConfig,
    datasetSize: number,
    files: Record<string, Uint8Array>,
    opts: ParallelOptions = {},
  ): Promise<ReplicatedTrainer> {
    return DataParallelTrainer.start(config, datasetSize, files, opts);
  }

  private static async start(
    config: RunConfig,
    datasetSize: number,
    files: Record<string, Uint8Array> | undefined,
    opts: ParallelOptions,
  ): Promise<ReplicatedTrainer> {
    const replicas = opts.replicas ?? 1;
    assignMicroBatches(config.train.batchSize, config.train.microBatchSize, replicas);
    if (replicas === 1) {
      if (opts.blasThreads !== undefined && nativeKernelsInstalled())
        installNativeKernels({ threads: opts.blasThreads });
      const trainer = files
        ? DinoTrainer.restore(config, datasetSize, files, opts.lane)
        : DinoTrainer.create(config, datasetSize, opts.lane);
      return new LocalTrainer(trainer, null);
    }
    const blasThreads = opts.blasThreads ?? Math.max(1, Math.floor(os.availableParallelism() / replicas));
    const init: ReplicaInit = {
      config,
      datasetSize,
      files,
      lane: opts.lane,
      backend: opts.backend,
      blasThreads,
    };
    const handles = Array.from({ length: replicas }, (_, i) => new ReplicaHandle(i, spawnReplica()));
    try {
      const ready = await Promise.all(handles.map((h) => h.request({ type: 'init', init }, [], 'ready')));
      return new DataParallelTrainer(
        config,
        datasetSize,
        handles,
        ready[0].backend,
        ready[0].step,
        ready[0].stride,
      );
    } catch (e) {
      await Promise.all(handles.map((h) => h.terminate()));
      throw e;
    }
  }

  get replicas(): number {
    return this.handles.length;
  }
  get itersPerEpoch(): number {
    return this.schedule.itersPerEpoch;
  }
  get totalSteps(): number {
    return this.schedule.totalSteps;
  }
  get step(): number {
    return this.currentStep;
  }
  get epoch(): number {
    return Math.floor(this.currentStep / this.itersPerEpoch);
  }

  private usable(): void {
    if (this.broken)
      throw new Error(`data-parallel trainer is unusable after an earlier failure: ${this.broken.message}`);
  }

  async trainStep(batch: CropBatch): Promise<ParallelStepMetrics> {
    this.usable();
    const B = this.config.train.batchSize;
    if (batch.batch !== B) throw new Error(`batch has ${batch.batch} images, config.train.batchSize is ${B}`);
    const step = this.currentStep;
    const hyper = this.schedule.at(step);
    const t0 = performance.now();

    const parts = await Promise.all(
      this.handles.map((h, r) => {
        const { start, rows, micros } = this.plan[r];
        const { share, transfer } = shareOf(batch, start, rows);
        return h.request(
          { type: 'gradients', batch: share, micros, totalBatch: B, hyper },
          transfer,
          'gradients',
        );
      }),
    );
    const sumStart = performance.now();
    // Replica order is fixed, so every run adds the parts up in the same order.
    const names = parts[0].names;
    const grads = parts[0].grads;
    const teacherSum = parts[0].teacherSum;
    let loss = parts[0].loss;
    let entropy = parts[0].teacherEntropy;
    let kl = parts[0].klTeacherStudent;
    for (const p of parts.slice(1)) {
      if (
        p.names.length !== names.length ||
        p.names.some((n, i) => n !== names[i]) ||
        p.grads.length !== grads.length
      ) {
        throw new Error('replicas returned gradients for different parameters');
      }
      for (let i = 0; i < grads.length; i++) grads[i] += p.grads[i];
      for (let i = 0; i < teacherSum.length; i++) teacherSum[i] += p.teacherSum[i];
      loss += p.loss;
      entropy += p.teacherEntropy;
      kl += p.klTeacherStudent;
    }
    const sumMs = performance.now() - sumStart;
    // Nothing was updated yet, so a NaN leaves every replica as it was.
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(step, loss, this.config);

    let applied;
    try {
      applied = await Promise.all(
        this.handles.map((h, r) => {
          const last = r === this.handles.length - 1;
          const g = last ? grads : grads.slice();
          const t = last ? teacherSum : teacherSum.slice();
          return h.request(
            { type: 'apply', grads: g, names, teacherSum: t, totalBatch: B, hyper },
            [g.buffer as ArrayBuffer, t.buffer as ArrayBuffer],
            'applied',
          );
        }),
      );
    } catch (e) {
      // Some replicas may have stepped and others not: they no longer agree.
      this.broken = e instanceof Error ? e : new Error(String(e));
      throw e;
    }
    this.currentStep = applied[0].step;
    this.lastNumTensors = applied[0].numTensors;
    const stepMs = performance.now() - t0;
    const computeMs = parts.map((p) => p.computeMs);
    const applyMs = Math.max(...applied.map((a) => a.applyMs));
    const packMs = Math.max(...parts.map((p) => p.packMs));
    const slowest = Math.max(...parts.map((p) => p.computeMs + p.packMs));
    return {
      timings: { computeMs, packMs, sumMs, applyMs, exchangeMs: stepMs - slowest - sumMs - applyMs },
      loss,
      teacherEntropy: entropy,
      klTeacherStudent: kl,
      maxGradNorm: applied[0].maxGradNorm,
      step,
      epoch: Math.floor(step / this.itersPerEpoch),
      lr: hyper.lr,
      weightDecay: hyper.weightDecay,
      momentum: hyper.momentum,
      teacherTemp: hyper.teacherTemp,
      imagesPerSecond: (B * 1000) / stepMs,
      stepMs,
      backend: this.backendInfo.name,
      numTensors: this.lastNumTensors,
    };
  }

  async checkpointFiles(): Promise<Record<string, Uint8Array>> {
    this.usable();
    return (await this.handles[0].request({ type: 'checkpoint' }, [], 'checkpoint')).files;
  }

  async replicaChecksums(): Promise<string[]> {
    this.usable();
    const replies = await Promise.all(
      this.handles.map((h) => h.request({ type: 'checksum' }, [], 'checksum')),
    );
    return replies.map((r) => r.checksum);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.handles.map((h) => h.terminate()));
  }
}
