import type { BlobStore } from './blob-store';
import { mapLimit } from './concurrency';
import { createDecodeCounter, decodeSample, mergeDecodeCounter, type DecodeCounter } from './decode';
import { splitOf, type DatasetManifest } from './manifest';
import { readSplitSamples, type ShardSample } from './shard-reader';

/** A whole split decoded into one buffer: image i is `images.subarray(i·H·W·C, (i+1)·H·W·C)`, HWC order. */
export interface DecodedSplit {
  images: Uint8Array;
  /** Class index per image, −1 where the sample has no label. */
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: 1 | 3;
  /** Samples that could not be decoded and are left out of `images`. */
  skipped: number;
  skippedKeys: string[];
}

export interface LoadSplitOptions {
  /** Read at most this many samples (the first ones, in shard order). */
  limit?: number;
  /** Defaults to the manifest's channel count. */
  channels?: 1 | 3;
  /** Samples decoded at once; only non-PNG or unusual PNGs use sharp's thread pool. */
  concurrency?: number;
}

const BATCH = 256;

/** Decodes a split into memory; sized for 28-px-scale data (70k × 28 × 28 = 55 MB). */
export async function loadSplit(
  store: BlobStore,
  manifest: DatasetManifest,
  split: string,
  options: LoadSplitOptions = {},
): Promise<DecodedSplit> {
  const { width, height } = manifest.imageSize;
  const channels = options.channels ?? manifest.imageSize.channels;
  const capacity = Math.min(options.limit ?? Infinity, splitOf(manifest, split).count);
  const frame = width * height * channels;
  const images = new Uint8Array(capacity * frame);
  const labels = new Int32Array(capacity);
  const counter: DecodeCounter = createDecodeCounter();
  let count = 0;

  const drain = async (samples: ShardSample[]): Promise<void> => {
    // Per-sample counters merged in sample order, so skippedKeys does not depend on decode timing.
    const decoded = await mapLimit(samples, options.concurrency ?? 4, async (s) => {
      const own = createDecodeCounter();
      return { sample: await decodeSample(s, { channels, width, height }, own), own };
    });
    for (const { sample: d, own } of decoded) {
      mergeDecodeCounter(counter, own);
      if (!d || count >= capacity) continue;
      images.set(d.pixels, count * frame);
      labels[count] = d.label;
      count++;
    }
  };

  let pending: ShardSample[] = [];
  for await (const sample of readSplitSamples(store, manifest, split, { limit: options.limit })) {
    pending.push(sample);
    if (pending.length >= BATCH) {
      await drain(pending);
      pending = [];
    }
  }
  await drain(pending);

  return {
    images: count === capacity ? images : images.slice(0, count * frame),
    labels: count === capacity ? labels : labels.slice(0, count),
    count,
    height,
    width,
    channels,
    skipped: counter.skipped,
    skippedKeys: counter.skippedKeys,
  };
}
