import * as path from 'node:path';
import { FsBlobStore } from '../src/fs-blob-store';
import { imageAt } from '../src/images';
import { loadSplit } from '../src/load-split';
import { shardKey, type DatasetManifest } from '../src/manifest';
import { ShardCache } from '../src/streaming/shard-cache';
import {
  heldPass,
  splitSampleReader,
  StreamedSplitPass,
  type PassBatch,
  type SplitPass,
} from '../src/streaming/split-pass';
import { useTempDir } from './helpers';
import { pixelsOf, writeStreamingDataset, type SampleKind } from './streaming-fixtures';

// 100 samples in 5 shards of 20; three unusable images.
const BAD_IMAGES: Record<number, SampleKind> = { 3: 'truncated-jpg', 45: 'empty', 77: 'wrong-extension' };
const SHARD_SIZES = [20, 20, 20, 20, 20];

async function collect(pass: SplitPass, batchSize: number, limit?: number): Promise<PassBatch[]> {
  const out: PassBatch[] = [];
  for await (const batch of pass.batches(batchSize, limit)) out.push(batch);
  return out;
}

/** Each batch's images as [pixels, label] pairs, for comparing two passes. */
function contents(batches: PassBatch[]): [number[], number][][] {
  return batches.map((b) =>
    b.positions.map((p, k) => [Array.from(imageAt(b.images, p).pixels), b.labels[k]]),
  );
}

describe('split passes', () => {
  const tmp = useTempDir('split-pass');
  let store: FsBlobStore;
  let manifest: DatasetManifest;
  let caches = 0;

  beforeAll(async () => {
    store = new FsBlobStore(path.join(tmp(), 'store'));
    manifest = await writeStreamingDataset(store, {
      name: 'eval',
      shardSizes: SHARD_SIZES,
      kinds: BAD_IMAGES,
    });
  });

  async function readerOf(m: DatasetManifest) {
    // Room for two shards only: a pass must not need the split on disk either.
    const cache = await ShardCache.open({
      store,
      dataset: m.name,
      dir: path.join(tmp(), `cache-${caches++}`),
      maxBytes: 2 * Math.max(...m.splits.train.shards.map((s) => s.bytes)),
    });
    return splitSampleReader(m, 'train', cache);
  }

  it('streams batches of usable images in sample order, the same as the split held in memory', async () => {
    const pass = new StreamedSplitPass({
      reader: await readerOf(manifest),
      cropFraction: 1,
      prefetchBatches: 2,
    });
    const streamed = await collect(pass, 16);
    const held = await collect(heldPass(await loadSplit(store, manifest, 'train')), 16);

    // 97 usable images: six full batches and one of one; unusable samples are left out, not replaced.
    expect(streamed.map((b) => b.positions.length)).toEqual([16, 16, 16, 16, 16, 16, 1]);
    expect(contents(streamed)).toEqual(contents(held));
    expect(streamed[streamed.length - 1].samplesRead).toBe(100);
    expect(pass.skipped()).toMatchObject({ images: 3, shards: 0 });
    // A PNG sample (index 0) comes back with its pixels.
    expect(Array.from(imageAt(streamed[0].images, 0).pixels)).toEqual(Array.from(pixelsOf(0)));
  });

  it('reads the first `limit` samples only, and counts per pass', async () => {
    const pass = new StreamedSplitPass({ reader: await readerOf(manifest), cropFraction: 1 });
    const batches = await collect(pass, 8, 40);
    expect(batches.reduce((n, b) => n + b.positions.length, 0)).toBe(39);
    expect(pass.skipped().images).toBe(1);
    await collect(pass, 8, 50);
    expect(pass.skipped().images).toBe(2);
  });

  it('counts the samples of a shard that cannot be fetched intact as skipped', async () => {
    const damaged = await writeStreamingDataset(store, { name: 'damaged', shardSizes: SHARD_SIZES });
    const key = shardKey('damaged', damaged.splits.train.shards[2].file);
    const bytes = Uint8Array.from(await store.get(key));
    bytes[600] ^= 0xff;
    await store.put(key, bytes);
    const pass = new StreamedSplitPass({ reader: await readerOf(damaged), cropFraction: 1 });
    const batches = await collect(pass, 16);
    expect(batches.reduce((n, b) => n + b.positions.length, 0)).toBe(80);
    expect(pass.skipped()).toMatchObject({ images: 20, shards: 1 });
    expect(pass.skipped().reasons[0]).toContain(damaged.splits.train.shards[2].file);
  });

  it('reads chosen samples in the order asked, unusable ones left out', async () => {
    const reader = await readerOf(manifest);
    const read = await reader.readSamples([62, 3, 0, 45, 99]);
    expect(read.indices).toEqual([62, 0, 99]);
    expect(Array.from(read.labels)).toEqual([62 % 5, 0, 99 % 5]);
    expect(Array.from(imageAt(read, 1).pixels)).toEqual(Array.from(pixelsOf(0)));
    expect(reader.stats().skippedImages).toBe(2);
  });
});
