import * as path from 'node:path';
import { FsBlobStore } from '../src/fs-blob-store';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, importFashionMnist } from '../src/importers/fashion-mnist';
import { readIdxImagesAndLabels } from '../src/importers/idx';
import { uniformSize } from '../src/images';
import { loadSplit } from '../src/load-split';
import { readManifest, shardKey } from '../src/manifest';
import { useTempDir } from './helpers';

describe('Fashion-MNIST import (300-image subset of the real files)', () => {
  const dir = useTempDir('fmnist');
  const LIMIT = 300;

  it('writes shards and a manifest that read back to the IDX pixels and labels', async () => {
    const store = new FsBlobStore(dir());
    const written = await importFashionMnist({ store, name: 'fmnist-sub', shardSize: 128, limit: LIMIT });
    const manifest = await readManifest(store, 'fmnist-sub');
    expect(manifest).toEqual(written);
    expect(manifest.imageSize).toEqual({ width: 28, height: 28, channels: 1 });
    expect(manifest.classes).toEqual(FASHION_MNIST_CLASSES);
    expect(manifest.splits.train.count).toBe(LIMIT);
    expect(manifest.splits.train.shards.map((s) => [s.file, s.count])).toEqual([
      ['train-000000.tar', 128],
      ['train-000001.tar', 128],
      ['train-000002.tar', 44],
    ]);
    expect(manifest.splits.test.count).toBe(LIMIT);
    expect(await store.list(shardKey('fmnist-sub', ''))).toHaveLength(6);

    for (const [split, prefix] of [
      ['train', 'train'],
      ['test', 't10k'],
    ] as const) {
      const source = await readIdxImagesAndLabels(
        path.join(FASHION_MNIST_DIR, `${prefix}-images-idx3-ubyte.gz`),
        path.join(FASHION_MNIST_DIR, `${prefix}-labels-idx1-ubyte.gz`),
        10,
      );
      const data = await loadSplit(store, manifest, split);
      expect(data).toMatchObject({ count: LIMIT, channels: 1, skipped: 0 });
      expect(uniformSize(data)).toEqual({ height: 28, width: 28 });
      expect(Buffer.from(data.images).equals(Buffer.from(source.images.subarray(0, LIMIT * 784)))).toBe(true);
      expect(Array.from(data.labels)).toEqual(Array.from(source.labels.subarray(0, LIMIT)));
    }
  });

  it('loads with a limit and as 3 channels', async () => {
    const store = new FsBlobStore(dir());
    const manifest = await readManifest(store, 'fmnist-sub');
    const gray = await loadSplit(store, manifest, 'test', { limit: 150 });
    const rgb = await loadSplit(store, manifest, 'test', { limit: 150, channels: 3 });
    expect(gray.count).toBe(150);
    expect(rgb).toMatchObject({ count: 150, channels: 3 });
    expect(rgb.images).toHaveLength(150 * 28 * 28 * 3);
    for (const i of [0, 784 * 3 + 17, 149 * 784 + 783]) {
      expect([rgb.images[i * 3], rgb.images[i * 3 + 1], rgb.images[i * 3 + 2]]).toEqual([
        gray.images[i],
        gray.images[i],
        gray.images[i],
      ]);
    }
  });

  it('produces byte-identical shards when run again', async () => {
    const again = await importFashionMnist({
      store: new FsBlobStore(dir()),
      name: 'fmnist-sub2',
      shardSize: 128,
      limit: LIMIT,
    });
    const first = await readManifest(new FsBlobStore(dir()), 'fmnist-sub');
    expect(again.splits).toEqual(first.splits);
  });
});
