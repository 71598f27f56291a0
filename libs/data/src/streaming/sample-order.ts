import seedrandom from 'seedrandom';
import type { SplitInfo } from '../manifest';
import { itersPerEpoch } from '../sampler';

/**
 * The data order for a split read shard by shard, as a pure function of (seed, epoch, the split's
 * shard list), so a retried or resumed run recomputes the batches it saw before (as sampler.ts
 * does for a split held in memory).
 *
 * For each epoch:
 *  1. the shard order is shuffled (Fisher–Yates, generator seeded with (seed, epoch));
 *  2. the shards' samples are laid end to end in that order;
 *  3. that sequence is cut into consecutive windows of `windowSize` samples, and each window is
 *     shuffled with its own generator seeded with (seed, epoch, window).
 * Batches are then consecutive runs of `batchSize` positions of that order; the incomplete tail
 * is dropped (drop_last), as in sampler.ts.
 *
 * How far this is from a uniform shuffle: a sample only moves within its window, so a batch's
 * samples come from the shards overlapping the one or two windows it falls in (at most about
 * windowSize / shardSize + 1 per window), never from the whole split; across epochs the shard
 * order changes, so the set of shards seen together changes too. That is the price of reading
 * each shard once per epoch through a bounded cache instead of seeking across the whole data set
 * for every batch, and it is what production streaming loaders do: MosaicML Streaming's `py1b`
 * algorithm (its default from 2023 until `py1e`) shuffles the shard order and then shuffles
 * samples within fixed-size blocks (`shuffle_block_size`, by default at least 2^18 samples), and
 * WebDataset pipelines shuffle the shard list and then pass samples through a shuffle buffer of a
 * few thousand samples. Both rely on shards being a random mix of the data set: shards written in
 * class order (the image-folder importer writes classes one after another) give batches of few
 * classes unless a window spans many shards.
 */

export const DEFAULT_SHUFFLE_WINDOW = 8192;
/** Shards a default window spans at least, whatever their size. */
export const MIN_SHARDS_PER_WINDOW = 4;

/**
 * The window used when none is given: 8192 samples, or more where shards are large, so that a
 * window always mixes several shards (the importers write 10 000-sample shards, which would
 * otherwise give windows of one or two shards). A function of the shard list only, so the order
 * stays a pure function of (seed, epoch, shards).
 */
export function defaultShuffleWindow(shardCounts: readonly number[]): number {
  const largest = shardCounts.reduce((max, c) => Math.max(max, c), 0);
  return Math.max(DEFAULT_SHUFFLE_WINDOW, MIN_SHARDS_PER_WINDOW * largest);
}

// Epoch orders kept: the current one and the next, so prefetching or filling in past an epoch's
// end does not recompute the current epoch at every step.
const CACHED_EPOCHS = 2;

export interface SampleOrderOptions {
  /** Samples per shard, in the manifest's shard order. */
  shardCounts: readonly number[];
  seed: number;
  /** Samples shuffled together; by default `defaultShuffleWindow(shardCounts)`. */
  windowSize?: number;
}

/** Where a batch sits in its epoch's order: positions [start, start + batchSize). */
export interface BatchPlacement {
  epoch: number;
  start: number;
}

export class StreamingSampleOrder {
  readonly seed: number;
  readonly windowSize: number;
  readonly shardCounts: readonly number[];
  /** Samples in the split. */
  readonly count: number;
  /** shardStarts[s] is the global index of shard s's first sample; the last entry is `count`. */
  private readonly shardStarts: Float64Array;
  private readonly epochs = new Map<number, Int32Array>();

  constructor(options: SampleOrderOptions) {
    const windowSize = options.windowSize ?? defaultShuffleWindow(options.shardCounts);
    if (!Number.isInteger(windowSize) || windowSize < 1)
      throw new Error(`shuffle window must be a positive integer, got ${windowSize}`);
    if (!Number.isFinite(options.seed)) throw new Error(`seed must be a finite number, got ${options.seed}`);
    this.seed = options.seed;
    this.windowSize = windowSize;
    this.shardCounts = [...options.shardCounts];
    this.shardStarts = new Float64Array(this.shardCounts.length + 1);
    for (const [s, c] of this.shardCounts.entries()) {
      if (!Number.isInteger(c) || c < 0)
        throw new Error(`shard ${s}: sample count must be a non-negative integer, got ${c}`);
      this.shardStarts[s + 1] = this.shardStarts[s] + c;
    }
    this.count = this.shardStarts[this.shardCounts.length];
    if (this.count > 0x7fffffff) throw new Error(`split of ${this.count} samples is too large for an index`);
  }

  static forSplit(split: SplitInfo, seed: number, windowSize?: number): StreamingSampleOrder {
    return new StreamingSampleOrder({ shardCounts: split.shards.map((s) => s.count), seed, windowSize });
  }

  /**
   * The order of the split's first `count` samples (a split loaded with a limit): its shards cut
   * where the limit falls. The window is the whole split's default, so a limit changes nothing else.
   */
  static forPrefix(split: SplitInfo, count: number, seed: number): StreamingSampleOrder {
    const all = split.shards.map((s) => s.count);
    const shardCounts: number[] = [];
    let left = count;
    for (const c of all) {
      if (left <= 0) break;
      shardCounts.push(Math.min(c, left));
      left -= c;
    }
    if (left > 0) throw new Error(`the split has ${split.count} samples, fewer than ${count}`);
    return new StreamingSampleOrder({ shardCounts, seed, windowSize: defaultShuffleWindow(all) });
  }

  get shardCount(): number {
    return this.shardCounts.length;
  }

  /** Global index of shard `shard`'s first sample. */
  shardStart(shard: number): number {
    return this.shardStarts[shard];
  }

  /** The shard holding global sample `index` (binary search over the shard starts). */
  shardOfSample(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= this.count)
      throw new Error(`sample index ${index} is outside the split (0..${this.count - 1})`);
    let lo = 0;
    let hi = this.shardCounts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.shardStarts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The epoch's shard order (step 1). */
  shardPermutation(epoch: number): Int32Array {
    checkEpoch(epoch);
    const perm = Int32Array.from(this.shardCounts, (_, i) => i);
    shuffleRange(perm, 0, perm.length, seedrandom.alea(`${this.seed}|stream-shards|${epoch}`));
    return perm;
  }

  /**
   * The epoch's whole order: position → global sample index. Computed once per epoch and cached
   * (4 bytes per sample); the array is shared, so callers must not write to it.
   */
  epochOrder(epoch: number): Int32Array {
    checkEpoch(epoch);
    const cached = this.epochs.get(epoch);
    if (cached) return cached;
    const order = new Int32Array(this.count);
    let at = 0;
    for (const shard of this.shardPermutation(epoch)) {
      const start = this.shardStarts[shard];
      for (let i = 0; i < this.shardCounts[shard]; i++) order[at++] = start + i;
    }
    for (let w = 0; w * this.windowSize < this.count; w++) {
      const from = w * this.windowSize;
      const rng = seedrandom.alea(`${this.seed}|stream-window|${epoch}|${w}`);
      shuffleRange(order, from, Math.min(this.count, from + this.windowSize), rng);
    }
    if (this.epochs.size >= CACHED_EPOCHS) {
      // Drop the epoch farthest from the one asked for.
      const far = [...this.epochs.keys()].sort((a, b) => Math.abs(b - epoch) - Math.abs(a - epoch))[0];
      this.epochs.delete(far);
    }
    this.epochs.set(epoch, order);
    return order;
  }

  /** The epoch of global step `step` and where its batch starts in that epoch's order. */
  placeBatch(batchSize: number, step: number): BatchPlacement {
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`step must be a non-negative integer, got ${step}`);
    const iters = itersPerEpoch(this.count, batchSize);
    return { epoch: Math.floor(step / iters), start: (step % iters) * batchSize };
  }

  /** The global sample indices of step `step`'s batch (same meaning as sampler.ts's `batchIndices`). */
  batchIndices(batchSize: number, step: number): number[] {
    const { epoch, start } = this.placeBatch(batchSize, step);
    return Array.from(this.epochOrder(epoch).subarray(start, start + batchSize));
  }

  /**
   * The shards that the batches of steps [fromStep, toStep) read, each once, in the order they are
   * first needed: what a reader should fetch ahead. Samples that replace unusable ones may come
   * from a little further on; those shards are not listed.
   */
  shardsForSteps(batchSize: number, fromStep: number, toStep: number): number[] {
    const seen = new Set<number>();
    for (let step = fromStep; step < toStep; step++) {
      const { epoch, start } = this.placeBatch(batchSize, step);
      const order = this.epochOrder(epoch);
      for (let p = start; p < start + batchSize; p++) seen.add(this.shardOfSample(order[p]));
    }
    return [...seen];
  }
}

/** `order.batchIndices(batchSize, step)`, in the shape of sampler.ts's `batchIndices`. */
export function streamingBatchIndices(
  order: StreamingSampleOrder,
  batchSize: number,
  step: number,
): number[] {
  return order.batchIndices(batchSize, step);
}

function checkEpoch(epoch: number): void {
  if (!Number.isInteger(epoch) || epoch < 0)
    throw new Error(`epoch must be a non-negative integer, got ${epoch}`);
}

/** Fisher–Yates over a[from, to), as sampler.ts's epochPermutation does over a whole array. */
function shuffleRange(a: Int32Array, from: number, to: number, rng: () => number): void {
  for (let i = to - 1; i > from; i--) {
    const j = from + Math.floor(rng() * (i - from + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}
