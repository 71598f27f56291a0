import type { BlobStore } from './blob-store';
import { mapLimit } from './concurrency';
import { createDecodeCounter, decodeSample, mergeDecodeCounter, type DecodeCounter } from './decode';
import { ImageSourceBuilder, type ImageSource } from './images';
import { manifestChannels, splitDecodedBytes, splitOf, type DatasetManifest } from './manifest';
import { readSplitSamples, type ShardSample } from './shard-reader';

/**
 * A whole split decoded into one buffer, each image at its own size (images.ts); for a fixed-size
 * dataset image i is `images.subarray(i·H·W·C, (i+1)·H·W·C)`, as before sizes could vary.
 */
export interface DecodedSplit extends ImageSource {
  /** Class index per image, −1 where the sample has no label. */
  labels: Int32Array;
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

/** Decodes a split into memory; the worker streams splits whose decoded bytes exceed its budget. */
export async function loadSplit(
  store: BlobStore,
  manifest: DatasetManifest,
  split: string,
  options: LoadSplitOptions = {},
): Promise<DecodedSplit> {
  const fixed = manifest.imageSize;
  const channels = options.channels ?? manifestChannels(manifest);
  const total = splitOf(manifest, split).count;
  const capacity = Math.min(options.limit ?? Infinity, total);
  // Exact for a fixed-size or a whole split, so the buffer is filled without copies; else a guess it grows from.
  const expectedBytes =
    total === 0
      ? 0
      : Math.ceil(
          (splitDecodedBytes(manifest, split) / manifestChannels(manifest)) * channels * (capacity / total),
        );
  const builder = new ImageSourceBuilder(channels, capacity, expectedBytes);
  const labels = new Int32Array(capacity);
  const counter: DecodeCounter = createDecodeCounter();
  const decodeOptions = { channels, width: fixed?.width, height: fixed?.height };

  const drain = async (samples: ShardSample[]): Promise<void> => {
    // Per-sample counters merged in sample order, so skippedKeys does not depend on decode timing.
    const decoded = await mapLimit(samples, options.concurrency ?? 4, async (s) => {
      const own = createDecodeCounter();
      return { sample: await decodeSample(s, decodeOptions, own), own };
    });
    for (const { sample: d, own } of decoded) {
      mergeDecodeCounter(counter, own);
      if (!d || builder.size >= capacity) continue;
      labels[builder.size] = d.label;
      builder.add(d.pixels, d.height, d.width);
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

  const images = builder.finish();
  return {
    ...images,
    labels: images.count === capacity ? labels : labels.slice(0, images.count),
    skipped: counter.skipped,
    skippedKeys: counter.skippedKeys,
  };
}
