import { readdir } from 'node:fs/promises';
import { BlobNotFoundError, isBlobNotFound } from '../src/blob-store';
import { FsBlobStore } from '../src/fs-blob-store';
import { useTempDir } from './helpers';

describe('FsBlobStore', () => {
  const dir = useTempDir('blobs');

  it('puts, gets, overwrites and lists by prefix', async () => {
    const store = new FsBlobStore(dir());
    await store.put('datasets/a/manifest.json', Buffer.from('{}'));
    await store.put('datasets/a/shards/train-000000.tar', Uint8Array.of(1, 2, 3));
    await store.put('datasets/a/shards/test-000000.tar', Uint8Array.of(4));
    await store.put('datasets/b/manifest.json', Uint8Array.of(5));
    await store.put('datasets/a/shards/train-000000.tar', Uint8Array.of(9, 9));
    expect(Array.from(await store.get('datasets/a/shards/train-000000.tar'))).toEqual([9, 9]);
    expect(await store.list('datasets/a/shards/tr')).toEqual(['datasets/a/shards/train-000000.tar']);
    expect(await store.list('datasets/')).toEqual([
      'datasets/a/manifest.json',
      'datasets/a/shards/test-000000.tar',
      'datasets/a/shards/train-000000.tar',
      'datasets/b/manifest.json',
    ]);
    expect(await store.list('nothing/here/')).toEqual([]);
    // No temp files left behind by the atomic writes.
    expect((await readdir(`${dir()}/datasets/a/shards`)).sort()).toEqual([
      'test-000000.tar',
      'train-000000.tar',
    ]);
  });

  it('writes a key only when it is free; of racing writers exactly one wins', async () => {
    const store = new FsBlobStore(dir());
    expect(await store.putBytesIfAbsent('runs/r/COMMITTED', Uint8Array.of(1))).toBe(true);
    expect(await store.putBytesIfAbsent('runs/r/COMMITTED', Uint8Array.of(2))).toBe(false);
    expect(Array.from(await store.get('runs/r/COMMITTED'))).toEqual([1]);

    const racers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.putBytesIfAbsent('runs/race/COMMITTED', Uint8Array.of(i))),
    );
    expect(racers.filter(Boolean)).toHaveLength(1);
    expect(Array.from(await store.get('runs/race/COMMITTED'))).toEqual([racers.indexOf(true)]);
    expect(await readdir(`${dir()}/runs/race`)).toEqual(['COMMITTED']);
  });

  it('reports a missing key with a not-found error naming it', async () => {
    const store = new FsBlobStore(dir());
    const err = await store.get('datasets/none/manifest.json').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlobNotFoundError);
    expect(isBlobNotFound(err)).toBe(true);
    expect((err as Error).message).toContain('datasets/none/manifest.json');
  });

  it('refuses keys that could escape the root folder', async () => {
    const store = new FsBlobStore(dir());
    await expect(store.put('../outside', Uint8Array.of(1))).rejects.toThrow('invalid blob key "../outside"');
    await expect(store.get('/etc/passwd')).rejects.toThrow('invalid blob key');
    await expect(store.get('a//b')).rejects.toThrow('invalid blob key');
  });
});
