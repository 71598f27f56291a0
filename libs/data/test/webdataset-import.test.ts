import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import { DatasetSourceError } from '../src/errors';
import { FsBlobStore } from '../src/fs-blob-store';
import { importWebDataset, localTarSources, type WebDatasetProgress } from '../src/importers/webdataset';
import { uniformSize } from '../src/images';
import { loadSplit } from '../src/load-split';
import { readManifest, shardKey } from '../src/manifest';
import { packTar } from '../src/shard-writer';
import { useTempDir } from './helpers';

const solid = (w: number, h: number, rgb: [number, number, number]) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });
const text = (s: string) => Buffer.from(s, 'utf8');

describe('WebDataset tar import', () => {
  const dir = useTempDir('wds');
  const tarA = () => path.join(dir(), 'a.tar');
  const tarB = () => path.join(dir(), 'b.tar');

  beforeAll(async () => {
    const jpeg = await solid(8, 6, [10, 200, 10]).jpeg({ quality: 95 }).toBuffer();
    const noise = await sharp(Buffer.from(Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 7919) % 251)), {
      raw: { width: 64, height: 64, channels: 3 },
    })
      .png()
      .toBuffer();
    await writeFile(
      tarA(),
      await packTar([
        // Extensions in either order within a key.
        { name: 's/a.cls', body: text('1') },
        { name: 's/a.png', body: await solid(8, 6, [200, 10, 10]).png().toBuffer() },
        { name: 's/b.jpg', body: jpeg },
        { name: 's/b.cls', body: text('0') },
        { name: 's/c.jpeg', body: jpeg.subarray(0, jpeg.length >> 1) },
        { name: 's/c.cls', body: text('0') },
        { name: 's/d.png', body: new Uint8Array(0) },
        { name: 's/d.cls', body: text('1') },
        { name: 's/e.bmp', body: await solid(8, 6, [1, 2, 3]).png().toBuffer() },
        { name: 's/e.cls', body: text('1') },
        { name: 's/f.png', body: await solid(8, 6, [0, 0, 255]).png().toBuffer() },
        { name: 's/g.png', body: await solid(8, 6, [0, 0, 255]).png().toBuffer() },
        { name: 's/g.cls', body: text('two') },
        { name: 's/h.webp', body: await solid(8, 6, [30, 60, 90]).webp({ lossless: true }).toBuffer() },
        { name: 's/h.cls', body: text('3') },
        { name: 's/i.png', body: await solid(8, 6, [90, 60, 30]).png().toBuffer() },
        { name: 's/i.cls', body: text(' 2\n') },
      ]),
    );
    const whole = await packTar([
      { name: 't/j.PNG', body: await solid(8, 6, [5, 5, 5]).png().toBuffer() },
      { name: 't/j.cls', body: text('2') },
      { name: 't/k.png', body: noise },
      { name: 't/k.cls', body: text('0') },
    ]);
    // Cut inside k.png's body: 512 bytes of k.cls and 1024 of end-of-archive follow it.
    await writeFile(tarB(), whole.subarray(0, whole.length - 512 * 4 - 1000));
  });

  it('imports good samples from every tar and lists each bad one with its reason', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store'));
    const progress: WebDatasetProgress[] = [];
    const sources = await localTarSources([tarA(), tarB()]);
    const result = await importWebDataset({
      sources,
      store,
      name: 'wds',
      shardSize: 3,
      onProgress: (p) => progress.push(p),
    });

    expect(result.imported).toBe(5);
    expect(Object.fromEntries(result.skippedFiles.map((f) => [f.file, f.reason]))).toEqual({
      [`${tarA()}:s/c.jpeg`]: expect.stringMatching(/^unreadable: /),
      [`${tarA()}:s/d`]: 'empty image member s/d.png',
      [`${tarA()}:s/e.bmp`]: 'unknown extension of s/e.bmp',
      [`${tarA()}:s/e`]: 'no image member',
      [`${tarA()}:s/f`]: 'no .cls member',
      [`${tarA()}:s/g`]: '.cls "two" is not a non-negative integer',
      [tarB()]: expect.stringMatching(/^unreadable tar, stopped after \d+ bytes: Unexpected end of data/),
    });
    expect(result.skipped).toBe(7);

    const manifest = await readManifest(store, 'wds');
    expect(manifest).toEqual(result.manifest);
    expect(manifest.classes).toEqual(['0', '1', '2', '3']);
    // Without resize the images keep their own sizes (all 8×6 here): the split records their decoded bytes.
    expect(manifest.imageSize).toBeUndefined();
    expect(manifest.channels).toBe(3);
    expect(manifest.splits.train.decoded).toEqual({ bytes: 5 * 8 * 6 * 3, maxSide: 8 });
    expect(manifest.splits.train.count).toBe(5);
    expect(manifest.splits.train.shards.map((s) => [s.file, s.count])).toEqual([
      ['train-000000.tar', 3],
      ['train-000001.tar', 2],
    ]);
    for (const shard of manifest.splits.train.shards) {
      const bytes = await store.get(shardKey('wds', shard.file));
      expect(shard.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(shard.bytes).toBe(bytes.length);
    }

    const data = await loadSplit(store, manifest, 'train');
    expect(data.skipped).toBe(0);
    // a, b, h, i from the first tar; j, read whole before the second tar breaks off.
    expect(Array.from(data.labels)).toEqual([1, 0, 3, 2, 2]);
    const frame = 8 * 6 * 3;
    const firstPixel = (i: number) => Array.from(data.images.subarray(i * frame, i * frame + 3));
    expect(firstPixel(0)).toEqual([200, 10, 10]);
    expect(firstPixel(2)).toEqual([30, 60, 90]);
    expect(firstPixel(3)).toEqual([90, 60, 30]);
    expect(firstPixel(4)).toEqual([5, 5, 5]);
    firstPixel(1).forEach((v, c) => expect(Math.abs(v - [10, 200, 10][c])).toBeLessThanOrEqual(3)); // JPEG

    const totalBytes = sources.reduce((sum, s) => sum + (s.bytes ?? 0), 0);
    expect(progress.at(-1)).toEqual({ images: 5, skipped: 7, bytesRead: totalBytes });
    for (const [i, p] of progress.entries())
      if (i > 0) expect(p.bytesRead).toBeGreaterThanOrEqual(progress[i - 1].bytesRead);
  });

  it('names classes from classNames, resizes, and adds a split whose labels keep those names', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store-named'));
    const classNames = ['cat', 'dog', 'eel', 'fox'];
    const train = await importWebDataset({
      sources: await localTarSources([tarA()]),
      store,
      name: 'named',
      resize: { width: 4, height: 4 },
      channels: 1,
      classNames,
    });
    expect(train.imported).toBe(4);
    expect(train.manifest.classes).toEqual(classNames);
    expect(train.manifest.imageSize).toEqual({ width: 4, height: 4, channels: 1 });

    // The second split takes the existing classes as its names; index 3 is beyond three names.
    await expect(
      importWebDataset({
        sources: await localTarSources([tarB()]),
        store,
        name: 'named',
        split: 'val',
        resize: { width: 4, height: 4 },
        channels: 1,
        classNames: ['cat', 'dog', 'eel'],
      }),
    ).rejects.toThrow(
      'dataset "named" exists with classes [cat, dog, eel, fox]; classNames are [cat, dog, eel]',
    );
    const val = await importWebDataset({
      sources: await localTarSources([tarB()]),
      store,
      name: 'named',
      split: 'val',
      resize: { width: 4, height: 4 },
      channels: 1,
    });
    const manifest = await readManifest(store, 'named');
    expect(val.manifest).toEqual(manifest);
    expect(manifest.classes).toEqual(classNames);
    expect(Object.keys(manifest.splits).sort()).toEqual(['train', 'val']);
    const data = await loadSplit(store, manifest, 'val');
    expect(data).toMatchObject({ count: 1, channels: 1 });
    expect(uniformSize(data)).toEqual({ height: 4, width: 4 });
    expect(Array.from(data.labels)).toEqual([2]);
  });

  it('skips a class index that has no name and refuses a source with nothing readable', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store-short'));
    const short = await importWebDataset({
      sources: await localTarSources([tarA()]),
      store,
      name: 'short',
      classNames: ['cat', 'dog', 'eel'],
    });
    expect(short.imported).toBe(3);
    expect(short.skippedFiles).toContainEqual({
      file: `${tarA()}:s/h`,
      reason: 'class 3 has no name (3 class names)',
    });

    const empty = path.join(dir(), 'empty.tar');
    await writeFile(empty, await packTar([{ name: 'x/y.txt', body: text('no images') }]));
    const error = importWebDataset({ sources: await localTarSources([empty]), store, name: 'nothing' });
    await expect(error).rejects.toBeInstanceOf(DatasetSourceError);
    await expect(error).rejects.toThrow(`no readable images in tars ${empty}`);
    await expect(localTarSources([path.join(dir(), 'missing.tar')])).rejects.toThrow(
      /missing\.tar does not exist/,
    );
  });
});
