import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import { FsBlobStore } from '../src/fs-blob-store';
import { importImageFolder } from '../src/importers/image-folder';
import { loadSplit } from '../src/load-split';
import { readManifest } from '../src/manifest';
import { useTempDir } from './helpers';

const solid = (w: number, h: number, rgb: [number, number, number]) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });

describe('image-folder import', () => {
  const dir = useTempDir('imgfolder');
  const src = () => path.join(dir(), 'src');

  beforeAll(async () => {
    const files: [string, Promise<Buffer>][] = [
      ['zebra/b.png', solid(8, 6, [200, 10, 10]).png().toBuffer()],
      ['zebra/a.jpg', solid(8, 6, [10, 200, 10]).jpeg({ quality: 95 }).toBuffer()],
      ['apple/x.PNG', solid(8, 6, [10, 10, 200]).png().toBuffer()],
      ['apple/broken.jpg', Promise.resolve(Buffer.from('definitely not a jpeg'))],
      ['apple/zz-wide.png', solid(12, 6, [50, 50, 50]).png().toBuffer()],
      ['apple/notes.txt', Promise.resolve(Buffer.from('ignored'))],
      ['mango/m.jpeg', solid(8, 6, [120, 120, 0]).jpeg({ quality: 95 }).toBuffer()],
    ];
    for (const [file, bytes] of files) {
      await mkdir(path.dirname(path.join(src(), file)), { recursive: true });
      await writeFile(path.join(src(), file), await bytes);
    }
  });

  it('imports classes and files in sorted order, skipping unreadable and off-size images', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store'));
    const result = await importImageFolder({ srcDir: src(), store, name: 'folder', shardSize: 2 });
    expect(result.manifest.classes).toEqual(['apple', 'mango', 'zebra']);
    expect(result.imported).toBe(4);
    expect(result.skipped).toBe(2);
    expect(result.skippedFiles.map((f) => f.file)).toEqual(['apple/broken.jpg', 'apple/zz-wide.png']);
    expect(result.skippedFiles[0].reason).toMatch(/^unreadable/);
    expect(result.skippedFiles[1].reason).toBe('size 12x6 differs from 8x6');
    expect(result.manifest.imageSize).toEqual({ width: 8, height: 6, channels: 3 });
    expect(result.manifest.splits.train.shards.map((s) => s.count)).toEqual([2, 2]);

    const manifest = await readManifest(store, 'folder');
    const data = await loadSplit(store, manifest, 'train');
    expect(data.count).toBe(4);
    // apple/x.PNG, mango/m.jpeg, zebra/a.jpg, zebra/b.png
    expect(Array.from(data.labels)).toEqual([0, 1, 2, 2]);
    const firstPixel = (i: number) => Array.from(data.images.subarray(i * 8 * 6 * 3, i * 8 * 6 * 3 + 3));
    expect(firstPixel(0)).toEqual([10, 10, 200]);
    expect(firstPixel(3)).toEqual([200, 10, 10]);
    for (const [i, rgb] of [
      [1, [120, 120, 0]],
      [2, [10, 200, 10]],
    ] as const) {
      firstPixel(i).forEach((v, c) => expect(Math.abs(v - rgb[c])).toBeLessThanOrEqual(3)); // JPEG
    }
  });

  it('resizes when asked and adds a second split to the existing manifest', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store2'));
    const train = await importImageFolder({
      srcDir: src(),
      store,
      name: 'sized',
      shardSize: 10,
      resize: { width: 4, height: 4 },
      channels: 1,
    });
    expect(train.imported).toBe(5); // zz-wide.png is resized, not skipped
    expect(train.skippedFiles.map((f) => f.file)).toEqual(['apple/broken.jpg']);
    const val = await importImageFolder({
      srcDir: src(),
      store,
      name: 'sized',
      split: 'val',
      resize: { width: 4, height: 4 },
      channels: 1,
    });
    const manifest = await readManifest(store, 'sized');
    expect(Object.keys(manifest.splits).sort()).toEqual(['train', 'val']);
    expect(manifest.createdAt).toBe(train.manifest.createdAt);
    expect(val.manifest).toEqual(manifest);
    const data = await loadSplit(store, manifest, 'val');
    expect(data).toMatchObject({ count: 5, width: 4, height: 4, channels: 1 });
    await expect(
      importImageFolder({
        srcDir: src(),
        store,
        name: 'sized',
        split: 'x',
        resize: { width: 8, height: 8 },
        channels: 1,
      }),
    ).rejects.toThrow('dataset "sized" exists with 4x4 images, resize asks for 8x8');
  });
});
