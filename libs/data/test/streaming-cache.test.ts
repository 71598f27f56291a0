import { readdir, readFile, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { FsBlobStore } from '../src/fs-blob-store';
import { shardKey, type DatasetManifest, type ShardInfo } from '../src/manifest';
import { ShardCache, ShardUnavailableError } from '../src/streaming/shard-cache';
import { useTempDir } from './helpers';
import { CountingStore, writeStreamingDataset } from './streaming-fixtures';

describe('ShardCache', () => {
  const tmp = useTempDir('shard-cache');
  let manifest: DatasetManifest;
  let shards: ShardInfo[];
  let backing: FsBlobStore;
  let run = 0;

  beforeAll(async () => {
    backing = new FsBlobStore(path.join(tmp(), 'store'));
    manifest = await writeStreamingDataset(backing, { name: 'cached', shardSizes: [6, 6, 6, 6, 6] });
    shards = manifest.splits.train.shards;
  });

  /** A fresh cache folder per test unless one is given. */
  async function openCache(
    store: CountingStore,
    options: { dir?: string; maxBytes?: number; prefetch?: number } = {},
  ) {
    const dir = options.dir ?? path.join(tmp(), `cache-${run++}`);
    const cache = await ShardCache.open({
      store,
      dataset: 'cached',
      dir,
      maxBytes: options.maxBytes ?? 1 << 30,
      prefetchConcurrency: options.prefetch,
    });
    return { cache, dir };
  }

  const keyOf = (shard: ShardInfo) => shardKey('cached', shard.file);
  /** The bytes of the shard's cached file, pinned while read. */
  async function readCached(cache: ShardCache, shard: ShardInfo): Promise<Uint8Array> {
    const pinned = await cache.get(shard);
    try {
      return new Uint8Array(await readFile(pinned.path));
    } finally {
      pinned.release();
    }
  }
  const stores = [
    ['whole objects', false],
    ['streamed objects', true],
  ] as const;
  const filesIn = async (dir: string) => (await readdir(dir)).sort();

  it('fetches a missing shard once, checks it, and serves it from disk afterwards', async () => {
    const store = new CountingStore(backing);
    const { cache, dir } = await openCache(store);
    const [a, b] = await Promise.all([cache.get(shards[0]), cache.get(shards[0])]);
    expect(store.getsOf(keyOf(shards[0]))).toBe(1); // concurrent gets share one download
    expect(a.path).toBe(path.join(dir, shards[0].file));
    expect(new Uint8Array(await readFile(a.path))).toEqual(await backing.get(keyOf(shards[0])));
    a.release();
    b.release();
    expect(await readCached(cache, shards[0])).toEqual(await backing.get(keyOf(shards[0])));
    expect(store.gets).toHaveLength(1);
    expect(cache.stats()).toMatchObject({ misses: 1, hits: 1, bytesFetched: shards[0].bytes, refetches: 0 });
    expect(await filesIn(dir)).toEqual([shards[0].file]);
  });

  it('evicts the least recently used unpinned shards to stay within its size', async () => {
    const store = new CountingStore(backing);
    const maxBytes = shards[0].bytes + shards[1].bytes + shards[2].bytes - 1; // room for two shards
    const { cache, dir } = await openCache(store, { maxBytes });
    const pinned = await cache.get(shards[0]);
    await readCached(cache, shards[1]);
    await readCached(cache, shards[2]); // evicts shard 1: shard 0 is pinned
    await cache.idle();
    expect(await filesIn(dir)).toEqual([shards[0].file, shards[2].file]);
    await readCached(cache, shards[3]); // over budget while shard 0 stays pinned, so shard 2 goes
    await cache.idle();
    expect(await filesIn(dir)).toEqual([shards[0].file, shards[3].file]);
    pinned.release();
    await readCached(cache, shards[4]); // shard 0, now free and least recently used, goes
    await cache.idle();
    expect(await filesIn(dir)).toEqual([shards[3].file, shards[4].file]);
    const stats = cache.stats();
    expect(stats.bytesCached).toBeLessThanOrEqual(maxBytes);
    expect(stats.filesCached).toBe(2);
    expect(stats.evictions).toBe(3);
    // An evicted shard comes back by downloading it again.
    await readCached(cache, shards[1]);
    expect(store.getsOf(keyOf(shards[1]))).toBe(2);
  });

  it('reuses checked files after a restart and deletes unfinished downloads', async () => {
    const first = new CountingStore(backing);
    const { cache, dir } = await openCache(first);
    await cache.prefetch(shards.slice(0, 3));
    await writeFile(path.join(dir, `${shards[3].file}.abc123.tmp`), 'half a download');
    const again = new CountingStore(backing);
    const { cache: reopened } = await openCache(again, { dir });
    expect(await filesIn(dir)).toEqual(shards.slice(0, 3).map((s) => s.file));
    for (const shard of shards.slice(0, 3))
      expect(await readCached(reopened, shard)).toEqual(await backing.get(keyOf(shard)));
    expect(again.gets).toEqual([]);
    expect(reopened.stats()).toMatchObject({ hits: 3, misses: 0, bytesFetched: 0 });
  });

  it('fetches again a cached file that was corrupted on disk', async () => {
    const { cache, dir } = await openCache(new CountingStore(backing));
    await readCached(cache, shards[0]);
    await readCached(cache, shards[1]);
    const file = path.join(dir, shards[0].file);
    const bytes = await readFile(file);
    bytes[100] ^= 0xff; // same size, wrong hash
    await writeFile(file, bytes);
    await writeFile(path.join(dir, shards[1].file), bytes.subarray(0, 10)); // truncated
    const store = new CountingStore(backing);
    const { cache: reopened } = await openCache(store, { dir });
    expect(await readCached(reopened, shards[0])).toEqual(await backing.get(keyOf(shards[0])));
    expect(await readCached(reopened, shards[1])).toEqual(await backing.get(keyOf(shards[1])));
    expect(store.gets).toEqual([keyOf(shards[0]), keyOf(shards[1])]);
    expect(reopened.stats()).toMatchObject({ corruptFiles: 2, misses: 2, hits: 0 });
    expect(new Uint8Array(await readFile(file))).toEqual(await backing.get(keyOf(shards[0])));
  });

  it.each(stores)(
    'fetches once more when a download does not match, and keeps the good copy (%s)',
    async (_, streamed) => {
      const store = new CountingStore(backing, { streamed });
      const good = await backing.get(keyOf(shards[2]));
      const bad = Uint8Array.from(good);
      bad[bad.length - 600] ^= 1;
      store.tampered.set(keyOf(shards[2]), [bad]);
      const { cache } = await openCache(store);
      expect(await readCached(cache, shards[2])).toEqual(good);
      expect(store.getsOf(keyOf(shards[2]))).toBe(2);
      expect(cache.stats()).toMatchObject({
        misses: 1,
        refetches: 1,
        bytesFetched: 2 * good.length,
        unavailable: [],
      });
    },
  );

  it.each(stores)(
    'gives up on a shard whose stored bytes are wrong, with a typed error, and does not fetch it again (%s)',
    async (_, streamed) => {
      const store = new CountingStore(backing, { streamed });
      const wrong = Uint8Array.from(await backing.get(keyOf(shards[4])));
      wrong[700] ^= 0x55;
      store.tampered.set(keyOf(shards[4]), [wrong, wrong]);
      const { cache, dir } = await openCache(store);
      const error = await readCached(cache, shards[4]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ShardUnavailableError);
      expect((error as ShardUnavailableError).shard).toBe(keyOf(shards[4]));
      expect((error as Error).message).toMatch(/sha256 [0-9a-f]{64} does not match/);
      await expect(cache.get(shards[4])).rejects.toBe(error);
      expect(store.getsOf(keyOf(shards[4]))).toBe(2);
      expect(cache.isUnavailable(shards[4])).toBe(true);
      expect(cache.stats().unavailable).toEqual([
        { file: shards[4].file, reason: expect.stringMatching(/does not match the manifest/) },
      ]);
      expect(await filesIn(dir)).toEqual([]);
      // A missing object is given up on as well.
      const missing = { ...shards[0], file: 'train-000099.tar' };
      await expect(cache.get(missing)).rejects.toThrow(/not found in the store/);
    },
  );

  it('prefetches in order with a bounded number of downloads at once', async () => {
    const store = new CountingStore(backing);
    const { cache } = await openCache(store, { prefetch: 2 });
    const order = [shards[3], shards[1], shards[4], shards[0], shards[2]];
    const [first, second] = await Promise.all([
      cache.prefetch(order.slice(0, 3)),
      cache.prefetch(order.slice(3)),
    ]);
    expect(first).toEqual({ fetched: 3, failed: 0 });
    expect(second).toEqual({ fetched: 2, failed: 0 });
    expect(store.maxInFlight).toBeLessThanOrEqual(2);
    expect(store.gets.slice(0, 2)).toEqual([keyOf(shards[3]), keyOf(shards[1])]);
    expect(order.every((s) => cache.has(s))).toBe(true);
    expect(await cache.prefetch(order)).toEqual({ fetched: 0, failed: 0 });
    expect(store.gets).toHaveLength(5);
  });
});
