import { evalCropFraction, REFERENCE_EVAL_CROP_FRACTION } from '../augment/eval-transform';
import { ImageSourceBuilder, imageAt, type ImageSource, type ImageView } from '../images';
import type { DecodedSplit } from '../load-split';
import { splitOf, type DatasetManifest } from '../manifest';
import { StreamingSampleOrder } from './sample-order';
import type { ShardCache } from './shard-cache';
import { StreamingSplitReader, type SampleImages } from './streaming-reader';

/*
 * One pass over a split in sample-index order (evaluation: each sample seen once, none replaced),
 * whether the split is held decoded in memory or streamed from its shards. Both give the same
 * batches: `batchSize` usable images each (the last may be shorter), unusable samples left out,
 * so what is computed from them does not depend on where the images came from.
 */

/** One batch: the images at `positions` of `images` (a held split is not copied), in sample order. */
export interface PassBatch {
  images: ImageSource;
  positions: number[];
  /** Class index per position, −1 where unlabelled. */
  labels: Int32Array;
  /** Samples of the pass read so far, usable or not (progress). */
  samplesRead: number;
}

export interface PassSkips {
  /** Samples left out as unusable (a held split: when it was loaded). */
  images: number;
  /** Shards given up on (their samples are among `images`). */
  shards: number;
  /** The first few reasons, as `<where>: reason`. */
  reasons: string[];
}

export interface SplitPass {
  /** Samples in the split (a held split: its images). */
  readonly samples: number;
  /** The evaluation crop (evalCropFraction), decided for the whole split rather than per batch. */
  readonly cropFraction: number;
  /** Batches of samples [0, min(limit, samples)); `skipped()` then counts for the latest such pass. */
  batches(batchSize: number, limit?: number): AsyncIterable<PassBatch>;
  skipped(): PassSkips;
}

/**
 * evalCropFraction for a split known only by its manifest: a fixed-size dataset's images all share
 * its size; images that keep their own sizes get the reference's crop. A held split given this
 * fraction evaluates exactly as the same split streamed.
 */
export function manifestEvalCropFraction(manifest: DatasetManifest): number {
  return manifest.imageSize ? 1 : REFERENCE_EVAL_CROP_FRACTION;
}

function passEnd(samples: number, batchSize: number, limit?: number): number {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0))
    throw new Error(`limit must be a non-negative integer, got ${limit}`);
  return Math.min(limit ?? samples, samples);
}

/** A split decoded in memory, as a pass (its unusable images were left out when it was loaded). */
export function heldPass(split: DecodedSplit, cropFraction = evalCropFraction(split)): SplitPass {
  return {
    samples: split.count,
    cropFraction,
    async *batches(batchSize, limit) {
      const end = passEnd(split.count, batchSize, limit);
      for (let start = 0; start < end; start += batchSize) {
        const stop = Math.min(start + batchSize, end);
        yield {
          images: split,
          positions: Array.from({ length: stop - start }, (_, k) => start + k),
          labels: split.labels.subarray(start, stop),
          samplesRead: stop,
        };
      }
    },
    skipped: () => ({ images: split.skipped, shards: 0, reasons: [...split.skippedKeys] }),
  };
}

/**
 * A reader of a split's samples by global index in the manifest's order, through `cache`: the
 * shard geometry of a sample order without its shuffle (`readSamples` and `prefetchSamples` only
 * use where each shard's samples start).
 */
export function splitSampleReader(
  manifest: DatasetManifest,
  split: string,
  cache: ShardCache,
): StreamingSplitReader {
  const order = StreamingSampleOrder.forSplit(splitOf(manifest, split), 0);
  return new StreamingSplitReader({ manifest, split, cache, order });
}

export interface StreamedPassOptions {
  reader: StreamingSplitReader;
  cropFraction: number;
  /** Batches past the one being read whose shards are fetched ahead (default 8; the cache must hold them). */
  prefetchBatches?: number;
}

/** Usable images waiting to be batched: views into the chunks they were decoded in. */
interface Pending {
  view: ImageView;
  label: number;
}

/**
 * A split streamed from its shards in sample order. Samples are read in chunks of `batchSize`,
 * one chunk ahead of the batch handed out, while the shards of the next `prefetchBatches` chunks
 * download; a batch is cut from the usable images as they come. Memory: two chunks and a batch of
 * decoded images, plus the reader's shard indexes, whatever the split's size.
 */
export class StreamedSplitPass implements SplitPass {
  readonly samples: number;
  readonly cropFraction: number;
  private readonly prefetchBatches: number;
  private readonly prefetching = new Set<Promise<unknown>>();
  private samplesSeen = 0;
  private imagesSeen = 0;

  constructor(private readonly options: StreamedPassOptions) {
    this.samples = options.reader.order.count;
    this.cropFraction = options.cropFraction;
    this.prefetchBatches = options.prefetchBatches ?? 8;
    if (!Number.isInteger(this.prefetchBatches) || this.prefetchBatches < 0)
      throw new Error(`prefetchBatches must be a non-negative integer, got ${this.prefetchBatches}`);
  }

  async *batches(batchSize: number, limit?: number): AsyncIterable<PassBatch> {
    const end = passEnd(this.samples, batchSize, limit);
    const pending: Pending[] = [];
    this.samplesSeen = this.imagesSeen = 0;
    let next: Promise<SampleImages> | undefined = this.readChunk(0, batchSize, end);
    try {
      for (let from = 0; next; from += batchSize) {
        const chunk = await next;
        const read = Math.min(from + batchSize, end);
        next = read < end ? this.readChunk(read, batchSize, end) : undefined;
        this.samplesSeen += read - from;
        this.imagesSeen += chunk.count;
        for (let i = 0; i < chunk.count; i++)
          pending.push({ view: imageAt(chunk, i), label: chunk.labels[i] });
        while (pending.length >= batchSize || (!next && pending.length > 0))
          yield batchOf(pending.splice(0, batchSize), chunk.channels, read);
      }
    } finally {
      // A pass dropped early (an abandoned job) still waits for its reads and downloads in flight.
      await Promise.allSettled([next, ...this.prefetching]);
    }
  }

  skipped(): PassSkips {
    const stats = this.options.reader.stats();
    return {
      images: this.samplesSeen - this.imagesSeen,
      shards: stats.skippedShards,
      reasons: [...stats.skippedShardReasons, ...stats.skippedImageReasons],
    };
  }

  /** Samples [from, from + batchSize) ∩ [0, end), decoded; their shards and the next ones' fetched ahead. */
  private readChunk(from: number, batchSize: number, end: number): Promise<SampleImages> {
    const { reader } = this.options;
    const to = Math.min(from + batchSize, end);
    const ahead = Math.min(to + this.prefetchBatches * batchSize, end);
    // Failures show when a chunk reads the shard (fetched again then, and skipped or thrown).
    const prefetch = reader.prefetchSamples(to, ahead).catch(() => undefined);
    this.prefetching.add(prefetch);
    void prefetch.finally(() => this.prefetching.delete(prefetch));
    const chunk = reader.readSamples(Array.from({ length: to - from }, (_, k) => from + k));
    // Read ahead: a failure is thrown where the chunk is awaited, not reported as unhandled meanwhile.
    chunk.catch(() => undefined);
    return chunk;
  }
}

function batchOf(items: Pending[], channels: 1 | 3, samplesRead: number): PassBatch {
  const bytes = items.reduce((sum, p) => sum + p.view.pixels.length, 0);
  const builder = new ImageSourceBuilder(channels, items.length, bytes);
  for (const { view } of items) builder.add(view.pixels, view.height, view.width);
  return {
    images: builder.finish(),
    positions: items.map((_, k) => k),
    labels: Int32Array.from(items, (p) => p.label),
    samplesRead,
  };
}
