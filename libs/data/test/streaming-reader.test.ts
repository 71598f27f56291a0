import * as path from 'node:path';
import { decodeImage } from '../src/decode';
import { FsBlobStore } from '../src/fs-blob-store';
import { uniformSize } from '../src/images';
import { loadSplit } from '../src/load-split';
import { shardKey, type DatasetManifest } from '../src/manifest';
import { StreamingSampleOrder } from '../src/streaming/sample-order';
import { ShardCache } from '../src/streaming/shard-cache';
import { StreamingSplitReader } from '../src/streaming/streaming-reader';
import { useTempDir } from './helpers';
import { encode, pixelsOf, SIDE, writeStreamingDataset, type SampleKind } from './streaming-fixtures';

const batchSize = 16;
const windowSize = 48;
const frame = SIDE * SIDE * 3;

// 200 samples in 10 shards of 20; four bad images, and shard 6 (samples 120–139) stored wrong.
const BAD_IMAGES: Record<number, SampleKind> = {
  3: 'truncated-jpg',
  45: 'empty',
  77: 'wrong-extension',
  160: 'wrong-size',
};
const BAD_SHARD = 6;
const isUsable = (i: number) => !(i in BAD_IMAGES) && Math.floor(i / 20) !== BAD_SHARD;

describe('StreamingSplitReader', () => {
  const tmp = useTempDir('streaming-reader');
  let store: FsBlobStore;
  let mixed: DatasetManifest;
  let clean: DatasetManifest;
  let caches = 0;

  beforeAll(async () => {
    store = new FsBlobStore(path.join(tmp(), 'store'));
    mixed = await writeStreamingDataset(store, {
      name: 'mixed',
      shardSizes: new Array(10).fill(20),
      kinds: BAD_IMAGES,
    });
    const badShard = mixed.splits.train.shards[BAD_SHARD];
    const key = shardKey('mixed', badShard.file);
    const bytes = Uint8Array.from(await store.get(key));
    bytes[600] ^= 0xff;
    await store.put(key, bytes);
    clean = await writeStreamingDataset(store, { name: 'clean', shardSizes: [23, 23, 23, 23, 8] });
  });

  async function readerFor(
    manifest: DatasetManifest,
    seed: number,
    options: { maxOpenShardBytes?: number } = {},
  ) {
    const cache = await ShardCache.open({
      store,
      dataset: manifest.name,
      dir: path.join(tmp(), `cache-${caches++}`),
      maxBytes: 1 << 30,
    });
    const order = StreamingSampleOrder.forSplit(manifest.splits.train, seed, windowSize);
    return new StreamingSplitReader({ manifest, split: 'train', cache, order, ...options });
  }

  /** What sample `index` decodes to, from a fresh encoding of the same pixels. */
  async function expectedPixels(index: number): Promise<Uint8Array> {
    if (index % 2 === 0) return pixelsOf(index); // PNG: lossless
    return (await decodeImage(await encode(index, 'jpg'), 3)).data;
  }

  it('keeps full batches: unusable samples are skipped, counted and replaced by the usable ones after the batch', async () => {
    const reader = await readerFor(mixed, 21);
    const { order } = reader;
    const n = order.count;
    const iters = Math.floor(n / batchSize);
    for (const epoch of [0, 1]) {
      const epochOrder = order.epochOrder(epoch);
      const seen = new Set<number>();
      for (let i = 0; i < iters; i++) {
        const step = epoch * iters + i;
        const batch = await reader.readBatch(batchSize, step);
        expect(batch).toMatchObject({
          step,
          epoch,
          count: batchSize,
          channels: 3,
        });
        expect(uniformSize(batch)).toEqual({ height: SIDE, width: SIDE });
        expect(batch.images).toHaveLength(batchSize * frame);

        // The rule: own usable samples keep their slots; unusable ones take, in slot order, the
        // usable samples that follow the batch in the epoch's order.
        const own = order.batchIndices(batchSize, step);
        const after: number[] = [];
        for (let p = i * batchSize + batchSize; after.length < batchSize; p++) {
          const index = epochOrder[p % n];
          if (isUsable(index)) after.push(index);
        }
        let next = 0;
        const expected = own.map((index) => (isUsable(index) ? index : after[next++]));
        expect(batch.indices).toEqual(expected);
        expect(batch.replaced).toBe(next);
        expect(new Set(batch.indices).size).toBe(batchSize);

        for (const [b, index] of batch.indices.entries()) {
          expect(batch.labels[b]).toBe(index % 5);
          expect(batch.images.subarray(b * frame, (b + 1) * frame)).toEqual(await expectedPixels(index));
        }
        for (const index of own) if (isUsable(index)) seen.add(index);
      }
      // Every usable sample of the epoch's batches' own positions was served.
      const ownUsable = Array.from(epochOrder.subarray(0, iters * batchSize)).filter(isUsable);
      expect(seen.size).toBe(ownUsable.length);
    }
    const stats = reader.stats();
    expect(stats.skippedImages).toBe(4);
    expect(stats.skippedImageReasons.sort()).toEqual([
      expect.stringMatching(/^train-000000\.tar\/s00003: undecodable/),
      expect.stringMatching(/^train-000002\.tar\/s00045: undecodable: Input Buffer is empty/),
      expect.stringMatching(/^train-000003\.tar\/s00077: no image member/),
      expect.stringMatching(/^train-000008\.tar\/s00160: size 6x6, expected 8x8/),
    ]);
    expect(stats.skippedShards).toBe(1);
    expect(stats.skippedShardReasons).toEqual([expect.stringMatching(/train-000006\.tar is unavailable/)]);
    expect(stats.replacedSamples).toBeGreaterThan(0);
    expect(stats.cache.unavailable.map((u) => u.file)).toEqual(['train-000006.tar']);
    expect(stats.cache.misses).toBe(10); // each shard fetched once for both epochs
    expect(stats.cache.refetches).toBe(1);
  });

  it('gives the same batches whatever order steps are read in, from a fresh cache', async () => {
    const a = await readerFor(mixed, 5);
    const b = await readerFor(mixed, 5);
    const steps = [0, 1, 2, 11, 12, 13, 30];
    const forward = [];
    for (const step of steps) forward.push(await a.readBatch(batchSize, step));
    for (const [k, step] of [...steps.entries()].reverse()) {
      const again = await b.readBatch(batchSize, step);
      expect(again.indices).toEqual(forward[k].indices);
      expect(Buffer.from(again.images).equals(Buffer.from(forward[k].images))).toBe(true);
    }
    // Concurrent reads share shards and agree too.
    const together = await Promise.all(steps.map((step) => b.readBatch(batchSize, step)));
    expect(together.map((t) => t.indices)).toEqual(forward.map((f) => f.indices));
  });

  it('holds shard indexes, not shards, within its byte bound', async () => {
    // An index weighs about 100 bytes per sample; two shards' worth of this split is the bound.
    const perShard = Math.max(...mixed.splits.train.shards.map((s) => s.count)) * 110;
    const reader = await readerFor(mixed, 8, { maxOpenShardBytes: 2 * perShard });
    for (let step = 0; step < 20; step++) {
      await reader.readBatch(batchSize, step);
      expect(reader.stats().openShardBytes).toBeLessThanOrEqual(2 * perShard);
      expect(reader.stats().openShards).toBeLessThanOrEqual(2);
    }
    // A shard dropped from memory is read again from the disk cache, not downloaded again.
    expect(reader.stats().cache.misses).toBe(10);
    expect(reader.stats().cache.hits).toBeGreaterThan(0);
  });

  it('decodes the same pixels as loading the whole split', async () => {
    const reader = await readerFor(clean, 3);
    const whole = await loadSplit(store, clean, 'train');
    expect(whole.skipped).toBe(0);
    for (const step of [0, 4, 6, 9]) {
      const batch = await reader.readBatch(batchSize, step);
      expect(batch.replaced).toBe(0);
      for (const [b, index] of batch.indices.entries()) {
        expect(batch.images.subarray(b * frame, (b + 1) * frame)).toEqual(
          whole.images.subarray(index * frame, (index + 1) * frame),
        );
        expect(batch.labels[b]).toBe(whole.labels[index]);
      }
    }
  });

  it('refuses an order built for other shards', async () => {
    const cache = await ShardCache.open({
      store,
      dataset: 'clean',
      dir: path.join(tmp(), 'x'),
      maxBytes: 1 << 20,
    });
    const order = StreamingSampleOrder.forSplit(mixed.splits.train, 0);
    expect(() => new StreamingSplitReader({ manifest: clean, split: 'train', cache, order })).toThrow(
      /other shards/,
    );
  });
});
