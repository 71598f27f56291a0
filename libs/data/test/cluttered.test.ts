import * as path from 'node:path';
import { FsBlobStore } from '../src/fs-blob-store';
import {
  CLUTTERED_OBJECT_THRESHOLD,
  importClutteredFashionMnist,
  loadMasks,
  renderClutteredSample,
  type ClutterSource,
} from '../src/importers/cluttered';
import { FASHION_MNIST_DIR, importFashionMnist } from '../src/importers/fashion-mnist';
import { readIdxImagesAndLabels } from '../src/importers/idx';
import { loadSplit } from '../src/load-split';
import { readManifest } from '../src/manifest';
import { useTempDir } from './helpers';

/** `count` 28×28 images filled by `paint(x, y, index)`. */
function synthetic(count: number, paint: (x: number, y: number, i: number) => number): ClutterSource {
  const images = new Uint8Array(count * 784);
  for (let i = 0; i < count; i++)
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) images[i * 784 + y * 28 + x] = paint(x, y, i);
  return { images, count, width: 28, height: 28 };
}

const opts = { seed: 0, canvas: 48, split: 'train' };

describe('renderClutteredSample', () => {
  it('is a pure function of (seed, split, index)', () => {
    const src = synthetic(5, (x, y, i) => (x * 9 + y * 5 + i * 40) % 256);
    const a = renderClutteredSample(src, 2, opts);
    const b = renderClutteredSample(src, 2, opts);
    expect(Buffer.from(a.image).equals(Buffer.from(b.image))).toBe(true);
    expect(Buffer.from(a.mask).equals(Buffer.from(b.mask))).toBe(true);
    expect(a.placement).toEqual(b.placement);
    for (const other of [
      renderClutteredSample(src, 2, { ...opts, seed: 1 }),
      renderClutteredSample(src, 2, { ...opts, split: 'test' }),
      renderClutteredSample(src, 3, opts),
    ])
      expect(Buffer.from(other.image).equals(Buffer.from(a.image))).toBe(false);
    expect(a.image.length).toBe(48 * 48);
    expect(a.mask.length).toBe(48 * 48);
  });

  it('puts the mask exactly on the pasted object: a solid square fills its placement box', () => {
    const src = synthetic(4, () => 200);
    for (let i = 0; i < 4; i++) {
      const { image, mask, placement } = renderClutteredSample(src, i, opts);
      const { x, y, size } = placement;
      expect(size).toBeGreaterThanOrEqual(24);
      expect(size).toBeLessThanOrEqual(41);
      expect(x + size).toBeLessThanOrEqual(48);
      expect(y + size).toBeLessThanOrEqual(48);
      for (let py = 0; py < 48; py++)
        for (let px = 0; px < 48; px++) {
          const inside = px >= x && px < x + size && py >= y && py < y + size;
          expect(mask[py * 48 + px]).toBe(inside ? 255 : 0);
          if (inside) expect(image[py * 48 + px]).toBe(200);
        }
    }
  });

  it('follows the object shape: only the bright left half of the source is masked', () => {
    const src = synthetic(3, (x) => (x < 14 ? 180 : 0));
    const { mask, placement } = renderClutteredSample(src, 1, opts);
    const { x, y, size } = placement;
    const half = size / 2;
    for (let py = y; py < y + size; py++)
      for (let px = x; px < x + size; px++) {
        // One pixel of slack at the resampled edge.
        if (px - x < half - 1) expect(mask[py * 48 + px]).toBe(255);
        if (px - x > half) expect(mask[py * 48 + px]).toBe(0);
      }
  });

  it('keeps real garments above the threshold inside their box, on a busy background', async () => {
    const src = await readIdxImagesAndLabels(
      path.join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'),
      path.join(FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'),
      10,
    );
    let backgroundSpread = 0;
    for (let i = 0; i < 20; i++) {
      const { image, mask, placement } = renderClutteredSample(src, i, { ...opts, split: 'test' });
      const { x, y, size } = placement;
      let on = 0;
      const bg: number[] = [];
      for (let p = 0; p < 48 * 48; p++) {
        const px = p % 48;
        const py = Math.floor(p / 48);
        if (mask[p]) {
          on++;
          expect(px >= x && px < x + size && py >= y && py < y + size).toBe(true);
          expect(image[p]).toBeGreaterThan(CLUTTERED_OBJECT_THRESHOLD);
        } else bg.push(image[p]);
      }
      expect(on).toBeGreaterThan(0.1 * size * size);
      backgroundSpread += Math.max(...bg) - Math.min(...bg);
    }
    // Textured, not flat black: the background spans a wide range of gray levels on average.
    expect(backgroundSpread / 20).toBeGreaterThan(40);
  });

  it('rejects bad inputs by name', () => {
    const src = synthetic(2, () => 100);
    expect(() => renderClutteredSample(src, 2, opts)).toThrow(/image 2/);
    expect(() => renderClutteredSample(src, 0, { ...opts, canvas: 8 })).toThrow(/canvas/);
  });
});

describe('importClutteredFashionMnist + loadMasks', () => {
  const dir = useTempDir('cluttered');

  it('writes images, labels and masks that read back aligned with loadSplit', async () => {
    const store = new FsBlobStore(dir());
    const manifest = await importClutteredFashionMnist({
      store,
      name: 'clut',
      limit: 12,
      shardSize: 5,
      seed: 4,
    });
    expect(await readManifest(store, 'clut')).toEqual(manifest);
    expect(manifest.imageSize).toEqual({ width: 48, height: 48, channels: 1 });
    expect(manifest.splits.test.shards.map((s) => s.count)).toEqual([5, 5, 2]);
    const src = await readIdxImagesAndLabels(
      path.join(FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz'),
      path.join(FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'),
      10,
    );
    const split = await loadSplit(store, manifest, 'test');
    const masks = await loadMasks(store, manifest, 'test', { limit: 7 });
    expect(masks).toMatchObject({ count: 7, width: 48, height: 48 });
    expect(split.count).toBe(12);
    for (let i = 0; i < 7; i++) {
      const expected = renderClutteredSample(src, i, { seed: 4, canvas: 48, split: 'test' });
      expect(
        Buffer.from(split.images.subarray(i * 2304, (i + 1) * 2304)).equals(Buffer.from(expected.image)),
      ).toBe(true);
      expect(
        Buffer.from(masks.masks.subarray(i * 2304, (i + 1) * 2304)).equals(Buffer.from(expected.mask)),
      ).toBe(true);
      expect(split.labels[i]).toBe(src.labels[i]);
    }
    // Same seed, same bytes: the shard hashes do not change between imports.
    const again = await importClutteredFashionMnist({
      store: new FsBlobStore(path.join(dir(), 'again')),
      name: 'clut',
      limit: 12,
      shardSize: 5,
      seed: 4,
    });
    expect(again.splits).toEqual(manifest.splits);
  });

  it('names the sample when a dataset has no masks', async () => {
    const store = new FsBlobStore(path.join(dir(), 'plain'));
    const manifest = await importFashionMnist({ store, name: 'plain', limit: 2 });
    await expect(loadMasks(store, manifest, 'train')).rejects.toThrow(
      /"plain" split "train": sample 00000000 has no mask/,
    );
  });
});
