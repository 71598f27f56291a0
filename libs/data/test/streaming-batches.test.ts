import * as path from 'node:path';
import { parseRunConfig, type AugmentConfig } from '@dinoq/config';
import { augmentBatch } from '../src/augment/multi-crop';
import { FsBlobStore } from '../src/fs-blob-store';
import { loadSplit } from '../src/load-split';
import type { DatasetManifest } from '../src/manifest';
import { StreamingAugmentPool } from '../src/streaming/augment-pool';
import { StreamingSampleOrder } from '../src/streaming/sample-order';
import { ShardCache } from '../src/streaming/shard-cache';
import {
  StreamingBatches,
  type StreamingBatchesOptions,
  type StreamingTrainingBatch,
} from '../src/streaming/streaming-batches';
import { StreamingSplitReader } from '../src/streaming/streaming-reader';
import { useTempDir } from './helpers';
import { writeStreamingDataset } from './streaming-fixtures';

const cfg: AugmentConfig = parseRunConfig({
  model: { patchSize: 4 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
}).augment;
const batchSize = 12;
const seed = 17;

/** Polls until `condition` holds (the producer works in the background). */
async function waitFor(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 2));
  }
}

function sameBatch(a: StreamingTrainingBatch, b: StreamingTrainingBatch): void {
  expect([b.step, b.epoch, b.batch, b.indices, Array.from(b.labels), b.sizes]).toEqual([
    a.step,
    a.epoch,
    a.batch,
    a.indices,
    Array.from(a.labels),
    a.sizes,
  ]);
  expect(b.views).toHaveLength(a.views.length);
  b.views.forEach((view, v) =>
    expect(Buffer.from(view.buffer).equals(Buffer.from(a.views[v].buffer))).toBe(true),
  );
}

describe('StreamingBatches', () => {
  const tmp = useTempDir('streaming-batches');
  let store: FsBlobStore;
  let manifest: DatasetManifest;
  let caches = 0;
  const producers: StreamingBatches[] = [];
  const pools: StreamingAugmentPool[] = [];

  beforeAll(async () => {
    store = new FsBlobStore(path.join(tmp(), 'store'));
    // 150 samples in shards of 16 (the last one of 6), with a bad image so batches replace one.
    manifest = await writeStreamingDataset(store, {
      name: 'stream',
      shardSizes: [...new Array(9).fill(16), 6],
      kinds: { 40: 'truncated-jpg' },
    });
  });

  afterAll(async () => {
    await Promise.all(producers.map((p) => p.close()));
    await Promise.all(pools.map((p) => p.close()));
  });

  async function producer(
    options: Partial<StreamingBatchesOptions> & { fromStep: number; toStep: number },
    cacheBytes = 1 << 30,
  ) {
    const cache = await ShardCache.open({
      store,
      dataset: 'stream',
      dir: path.join(tmp(), `cache-${caches++}`),
      maxBytes: cacheBytes,
    });
    const order = StreamingSampleOrder.forSplit(manifest.splits.train, seed, 32);
    const reader = new StreamingSplitReader({ manifest, split: 'train', cache, order });
    const batches = new StreamingBatches({ reader, cfg, batchSize, ...options });
    producers.push(batches);
    return { batches, reader, cache };
  }

  async function collect(batches: StreamingBatches): Promise<StreamingTrainingBatch[]> {
    const out = [];
    for await (const b of batches) out.push(b);
    return out;
  }

  it('yields the same batches as a producer started at a later step', async () => {
    const { batches: whole } = await producer({ fromStep: 0, toStep: 28 }); // 12 steps per epoch
    const { batches: resumed } = await producer({ fromStep: 17, toStep: 28, readyBatches: 1 });
    const all = await collect(whole);
    const later = await collect(resumed);
    expect(all.map((b) => b.step)).toEqual(Array.from({ length: 28 }, (_, s) => s));
    expect(later).toHaveLength(11);
    later.forEach((b, k) => sameBatch(all[17 + k], b));
    expect(all.map((b) => b.epoch)).toEqual(Array.from({ length: 28 }, (_, s) => Math.floor(s / 12)));
    // The bad sample is replaced in every step whose own positions hold it.
    const { reader } = await producer({ fromStep: 0, toStep: 0 });
    const holding = all.filter((b) => reader.order.batchIndices(batchSize, b.step).includes(40));
    expect(holding.length).toBeGreaterThan(0);
    expect(all.map((b) => b.replaced)).toEqual(all.map((b) => (holding.includes(b) ? 1 : 0)));
    expect(all.some((b) => b.indices.includes(40))).toBe(false);
    expect(all.every((b) => b.batch === batchSize && new Set(b.indices).size === batchSize)).toBe(true);
    expect(await whole.next()).toBeUndefined();
  });

  it('augments exactly as training-batches does for a split held in memory', async () => {
    const clean = await writeStreamingDataset(store, { name: 'memory', shardSizes: [20, 20, 20, 7] });
    const cache = await ShardCache.open({
      store,
      dataset: 'memory',
      dir: path.join(tmp(), 'memory'),
      maxBytes: 1 << 30,
    });
    const order = StreamingSampleOrder.forSplit(clean.splits.train, seed, 24);
    const reader = new StreamingSplitReader({ manifest: clean, split: 'train', cache, order });
    const batches = new StreamingBatches({ reader, cfg, batchSize, fromStep: 3, toStep: 9 });
    producers.push(batches);
    const whole = await loadSplit(store, clean, 'train');
    for await (const b of batches) {
      const here = await augmentBatch(whole, b.indices, cfg, { seed, epoch: b.epoch });
      here.views.forEach((view, v) =>
        expect(Buffer.from(b.views[v].buffer).equals(Buffer.from(view.buffer))).toBe(true),
      );
    }
  });

  it('keeps at most readyBatches batches ahead and fetches shards ahead of need', async () => {
    const { batches, cache, reader } = await producer({
      fromStep: 0,
      toStep: 10,
      readyBatches: 3,
      prefetchSteps: 4,
    });
    const shardsAhead = (from: number, to: number) =>
      reader.order.shardsForSteps(batchSize, from, to).map((s) => reader.shardInfo(s));
    for (let step = 0; step < 10; step++) {
      // A slow consumer: the producer fills its queue, and no further.
      const expected = Math.min(3, 10 - step);
      await waitFor(() => batches.queued === expected, `${expected} batches queued`);
      expect(batches.queued).toBe(expected);
      // The shards of the next prefetchSteps steps beyond those started are fetched or on their way.
      const ahead = shardsAhead(step, Math.min(10, step + 3 + 4));
      await waitFor(() => ahead.every((s) => cache.has(s)), 'prefetched shards');
      const b = await batches.next();
      expect(b?.step).toBe(step);
      expect(batches.queued).toBeLessThanOrEqual(3);
    }
    expect(await batches.next()).toBeUndefined();
    expect(batches.maxQueued).toBe(3);
  });

  it('gives the same batches with augmentation threads as on this thread', async () => {
    const pool = StreamingAugmentPool.start(2);
    pools.push(pool);
    const { batches: here } = await producer({ fromStep: 5, toStep: 9 });
    const { batches: there } = await producer({ fromStep: 5, toStep: 9, pool });
    const a = await collect(here);
    const b = await collect(there);
    expect(b).toHaveLength(4);
    b.forEach((batch, k) => sameBatch(a[k], batch));
  });

  it('rejects the step whose shard cannot be read, and refuses use after close', async () => {
    const unreachable = {
      get: () => Promise.reject(new Error('store unreachable')),
      put: () => Promise.reject(new Error('store unreachable')),
    };
    const cache = await ShardCache.open({
      store: unreachable,
      dataset: 'stream',
      dir: path.join(tmp(), 'down'),
      maxBytes: 1 << 30,
    });
    const order = StreamingSampleOrder.forSplit(manifest.splits.train, seed, 32);
    const reader = new StreamingSplitReader({ manifest, split: 'train', cache, order });
    const batches = new StreamingBatches({ reader, cfg, batchSize, fromStep: 0, toStep: 3 });
    producers.push(batches);
    // A store error may be transient: it fails the step rather than skipping the shard.
    await expect(batches.next()).rejects.toThrow(/store unreachable/);
    expect(reader.stats().skippedShards).toBe(0);
    await batches.close();
    await expect(batches.next()).rejects.toThrow(/closed/);
    expect(() => new StreamingBatches({ reader, cfg, batchSize, fromStep: 5, toStep: 2 })).toThrow(
      /step range/,
    );
  });
});
