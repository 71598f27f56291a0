import type { AugmentConfig } from '@dinoq/config';
import type { TrainingBatch } from '../training-batches';
import type { StreamingAugmentPool } from './augment-pool';
import { augmentKeyedBatch } from './keyed-augment';
import type { StreamingSplitReader } from './streaming-reader';

/**
 * Training batches for steps [fromStep, toStep) of a streamed split, prepared ahead of use: the
 * shards of the next `prefetchSteps` steps are fetched into the cache in the background, and up to
 * `readyBatches` batches are read, decoded and multi-crop augmented before they are asked for.
 * A batch is a pure function of (seed, step): the sample order's indices for the step, and the
 * augmentation draws of each image keyed by (seed, epoch, global sample index) as in
 * training-batches.ts. A producer started at a later step therefore yields the same batches from
 * there on.
 *
 * Threads: decoding runs on this thread for PNGs and in sharp's pool for other formats;
 * augmentation runs in `pool`'s threads when one is given (each batch's images are posted to
 * them), else on this thread between the training steps that await `next()`.
 *
 * Memory: at most `readyBatches` batches (decoded images plus views) exist at once, plus the
 * reader's open shards and the order's epoch array: nothing grows with the number of images.
 */

export interface StreamingBatchesOptions {
  reader: StreamingSplitReader;
  cfg: AugmentConfig;
  batchSize: number;
  fromStep: number;
  /** Exclusive. */
  toStep: number;
  /** Steps fromStep, fromStep + stride, … (a slice's lane of a round); default 1. */
  stride?: number;
  /** Batches started but not yet taken, ready or in preparation (default 2). */
  readyBatches?: number;
  /** Steps past the next one whose shards are fetched ahead (default 8; the cache must hold them). */
  prefetchSteps?: number;
  /** Augmentation threads; without one, augmentation runs on this thread. */
  pool?: StreamingAugmentPool;
}

export interface StreamingTrainingBatch extends TrainingBatch {
  /** Class index per image, −1 where unlabelled. */
  labels: Int32Array;
  /** Samples of the step that were unusable and replaced. */
  replaced: number;
}

export class StreamingBatches implements AsyncIterable<StreamingTrainingBatch> {
  private readonly pending = new Map<number, Promise<StreamingTrainingBatch>>();
  private readonly prefetching = new Set<Promise<unknown>>();
  private readonly readyBatches: number;
  private readonly prefetchSteps: number;
  private readonly stride: number;
  private nextToStart: number;
  private nextToTake: number;
  private prefetchedTo: number;
  private closed = false;
  private highWater = 0;

  constructor(private readonly options: StreamingBatchesOptions) {
    const { fromStep, toStep } = options;
    if (!Number.isInteger(fromStep) || fromStep < 0 || !Number.isInteger(toStep) || toStep < fromStep)
      throw new Error(`step range [${fromStep}, ${toStep}) must be non-negative integers, from ≤ to`);
    this.readyBatches = options.readyBatches ?? 2;
    if (!Number.isInteger(this.readyBatches) || this.readyBatches < 1)
      throw new Error(`readyBatches must be a positive integer, got ${this.readyBatches}`);
    this.stride = options.stride ?? 1;
    if (!Number.isInteger(this.stride) || this.stride < 1)
      throw new Error(`stride must be a positive integer, got ${this.stride}`);
    this.prefetchSteps = options.prefetchSteps ?? 8;
    if (!Number.isInteger(this.prefetchSteps) || this.prefetchSteps < 0)
      throw new Error(`prefetchSteps must be a non-negative integer, got ${this.prefetchSteps}`);
    // Fails here, not in the background, when the split is smaller than one batch.
    options.reader.order.placeBatch(options.batchSize, fromStep);
    this.nextToStart = this.nextToTake = this.prefetchedTo = fromStep;
    this.fill();
  }

  /** Batches started and not yet taken (never more than `readyBatches`). */
  get queued(): number {
    return this.pending.size;
  }

  /** The most batches ever started and not yet taken at once. */
  get maxQueued(): number {
    return this.highWater;
  }

  /** The next step's batch, or undefined after the last step. */
  async next(): Promise<StreamingTrainingBatch | undefined> {
    if (this.closed) throw new Error('streaming batches are closed');
    if (this.nextToTake >= this.options.toStep) return undefined;
    const step = this.nextToTake;
    this.nextToTake += this.stride;
    const batch = this.pending.get(step)!;
    this.pending.delete(step);
    this.fill();
    return batch;
  }

  /**
   * Step `step`'s batch, for a training loop that asks by step: batches come in step order, so
   * asking out of order is an error naming both steps.
   */
  async batchFor(step: number): Promise<StreamingTrainingBatch> {
    const batch = await this.next();
    if (!batch || batch.step !== step)
      throw new Error(
        `streamed batches are out of step: asked for ${step}, next is ${batch?.step ?? 'none'}`,
      );
    return batch;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamingTrainingBatch> {
    for (let b = await this.next(); b; b = await this.next()) yield b;
  }

  /** Stops preparing batches and waits for the work in progress to settle. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending.values(), ...this.prefetching]);
    this.pending.clear();
  }

  private fill(): void {
    while (!this.closed && this.nextToStart < this.options.toStep && this.pending.size < this.readyBatches) {
      const step = this.nextToStart;
      this.nextToStart += this.stride;
      this.prefetchThrough(Math.min(this.options.toStep, step + 1 + this.prefetchSteps * this.stride));
      const batch = this.produce(step);
      // Rejections are reported by next(); this keeps one that nobody asked for yet from being unhandled.
      batch.catch(() => undefined);
      this.pending.set(step, batch);
      this.highWater = Math.max(this.highWater, this.pending.size);
    }
  }

  private prefetchThrough(toStep: number): void {
    if (toStep <= this.prefetchedTo) return;
    const from = this.prefetchedTo;
    this.prefetchedTo = toStep;
    const p = this.options.reader.prefetch(this.options.batchSize, from, toStep);
    this.prefetching.add(p);
    // A shard that fails here is fetched again, and its error thrown, when a batch reads it.
    void p.catch(() => undefined).finally(() => this.prefetching.delete(p));
  }

  private async produce(step: number): Promise<StreamingTrainingBatch> {
    const { reader, cfg, pool } = this.options;
    const images = await reader.readBatch(this.options.batchSize, step);
    const augmentation = { seed: reader.order.seed, epoch: images.epoch };
    const augmented = pool
      ? await pool.augment(images, images.indices, cfg, augmentation)
      : await augmentKeyedBatch(images, images.indices, cfg, augmentation);
    return {
      ...augmented,
      step,
      epoch: images.epoch,
      indices: images.indices,
      labels: images.labels,
      replaced: images.replaced,
    };
  }
}
