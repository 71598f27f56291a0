import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import { FsBlobStore } from '../src/fs-blob-store';
import { uniformSize } from '../src/images';
import { importImageFolder, IMAGE_FOLDER_SHUFFLE_SEED, seededShuffle } from '../src/importers/image-folder';
import { loadSplit } from '../src/load-split';
import { readManifest } from '../src/manifest';
import { readSplitSamples } from '../src/shard-reader';
import { useTempDir } from './helpers';

const solid = (w: number, h: number, rgb: [number, number, number]) =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } });

interface TreeImage {
  file: string;
  width: number;
  height: number;
  rgb: [number, number, number];
  format: 'png' | 'jpeg' | 'webp';
}

// Three classes, sizes and aspects that all differ (wide, tall, square), in every kept format.
const IMAGES: TreeImage[] = [
  { file: 'apple/a1.png', width: 40, height: 20, rgb: [200, 10, 10], format: 'png' },
  { file: 'apple/a2.jpg', width: 20, height: 40, rgb: [10, 200, 10], format: 'jpeg' },
  { file: 'apple/a3.PNG', width: 30, height: 30, rgb: [10, 10, 200], format: 'png' },
  { file: 'mango/m1.jpeg', width: 24, height: 16, rgb: [120, 120, 0], format: 'jpeg' },
  { file: 'mango/m2.webp', width: 16, height: 16, rgb: [0, 120, 120], format: 'webp' },
  { file: 'mango/m3.png', width: 12, height: 18, rgb: [120, 0, 120], format: 'png' },
  { file: 'zebra/z1.png', width: 50, height: 10, rgb: [60, 60, 60], format: 'png' },
  { file: 'zebra/z2.jpg', width: 12, height: 36, rgb: [250, 250, 250], format: 'jpeg' },
  { file: 'zebra/z3.png', width: 22, height: 14, rgb: [5, 5, 5], format: 'png' },
];
const CLASSES = ['apple', 'mango', 'zebra'];
const labelOf = (file: string) => CLASSES.indexOf(file.split('/')[0]);

/** The written order: the listing (class, then name, code-point order) shuffled with the fixed seed. */
function writtenOrder(): string[] {
  const listed = [...IMAGES.map((i) => i.file), 'apple/broken.jpg', 'zebra/z4-rotated.jpg'].sort((a, b) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  return seededShuffle(listed, IMAGE_FOLDER_SHUFFLE_SEED).filter((f) => f !== 'apple/broken.jpg');
}

async function encoded(image: TreeImage): Promise<Buffer> {
  const img = solid(image.width, image.height, image.rgb);
  if (image.format === 'jpeg') return img.jpeg({ quality: 95 }).toBuffer();
  if (image.format === 'webp') return img.webp({ lossless: true }).toBuffer();
  return img.png().toBuffer();
}

describe('image-folder import', () => {
  const dir = useTempDir('imgfolder');
  const src = () => path.join(dir(), 'src');
  const original = new Map<string, Buffer>();

  beforeAll(async () => {
    const files: [string, Buffer][] = [
      ...(await Promise.all(
        IMAGES.map(async (image): Promise<[string, Buffer]> => [image.file, await encoded(image)]),
      )),
      ['apple/broken.jpg', Buffer.from('definitely not a jpeg')],
      ['zebra/notes.txt', Buffer.from('ignored')],
      // 20 wide × 10 high as stored, EXIF "rotate 90° clockwise": upright it is 10 × 20.
      [
        'zebra/z4-rotated.jpg',
        await solid(20, 10, [90, 30, 30]).jpeg().withMetadata({ orientation: 6 }).toBuffer(),
      ],
    ];
    for (const [file, bytes] of files) {
      original.set(file, bytes);
      await mkdir(path.dirname(path.join(src(), file)), { recursive: true });
      await writeFile(path.join(src(), file), bytes);
    }
  });

  it('stores every image at its own size in a seeded shuffle across classes, skipping unreadable files', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store'));
    const result = await importImageFolder({ srcDir: src(), store, name: 'folder', shardSize: 4 });
    expect(result.manifest.classes).toEqual(CLASSES);
    expect(result.imported).toBe(IMAGES.length + 1);
    expect(result.skippedFiles.map((f) => f.file)).toEqual(['apple/broken.jpg']);
    expect(result.skippedFiles[0].reason).toMatch(/^unreadable/);

    const manifest = await readManifest(store, 'folder');
    expect(manifest).toEqual(result.manifest);
    expect(manifest.imageSize).toBeUndefined();
    expect(manifest.channels).toBe(3);
    const sizes = [...IMAGES.map((i) => [i.width, i.height]), [10, 20]];
    expect(manifest.splits.train.decoded).toEqual({
      bytes: sizes.reduce((sum, [w, h]) => sum + w * h * 3, 0),
      maxSide: 50,
    });
    expect(manifest.splits.train.shards.map((s) => s.count)).toEqual([4, 4, 2]);

    const written = writtenOrder();
    const labels = written.map(labelOf);
    // Class by class no more: the labels are not in ascending order.
    expect(labels.some((label, i) => i > 0 && label < labels[i - 1])).toBe(true);

    // Kept formats are stored byte for byte; the rotated JPEG is re-encoded upright.
    const samples = [];
    for await (const sample of readSplitSamples(store, manifest, 'train')) samples.push(sample);
    expect(samples.map((s) => s.label)).toEqual(labels);
    for (const [i, file] of written.entries()) {
      const stored = Buffer.from(samples[i].image!);
      expect([file, stored.equals(original.get(file)!)]).toEqual([file, file !== 'zebra/z4-rotated.jpg']);
    }

    const data = await loadSplit(store, manifest, 'train');
    expect(data.count).toBe(written.length);
    expect(uniformSize(data)).toBeUndefined();
    expect(Array.from(data.labels)).toEqual(labels);
    for (const [i, file] of written.entries()) {
      const image = IMAGES.find((img) => img.file === file);
      const [width, height] = image ? [image.width, image.height] : [10, 20];
      expect([file, data.widths[i], data.heights[i]]).toEqual([file, width, height]);
      const rgb = image?.rgb ?? [90, 30, 30];
      const first = Array.from(data.images.subarray(data.offsets[i], data.offsets[i] + 3));
      first.forEach((v, c) => expect([file, Math.abs(v - rgb[c]) <= 3]).toEqual([file, true])); // JPEG
    }

    // Importing the same tree again writes the same shards.
    const again = await importImageFolder({ srcDir: src(), store, name: 'folder-again', shardSize: 4 });
    expect(again.manifest.splits.train.shards.map((s) => s.sha256)).toEqual(
      manifest.splits.train.shards.map((s) => s.sha256),
    );
  });

  it('downscales images whose longer side exceeds maxSide, keeping aspect, and stores the rest as they are', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store-capped'));
    const result = await importImageFolder({ srcDir: src(), store, name: 'capped', maxSide: 32 });
    expect(result.manifest.splits.train.decoded?.maxSide).toBe(32);
    const data = await loadSplit(store, result.manifest, 'train');
    const samples = [];
    for await (const sample of readSplitSamples(store, result.manifest, 'train')) samples.push(sample);
    for (const [i, file] of writtenOrder().entries()) {
      const image = IMAGES.find((img) => img.file === file) ?? { width: 10, height: 20 };
      const longer = Math.max(image.width, image.height);
      const scale = Math.min(1, 32 / longer);
      const got = [data.widths[i], data.heights[i]];
      const want = [image.width * scale, image.height * scale];
      got.forEach((v, k) => expect([file, Math.abs(v - want[k]) <= 1]).toEqual([file, true]));
      const kept = Buffer.from(samples[i].image!).equals(original.get(file)!);
      expect([file, kept]).toEqual([file, longer <= 32 && file !== 'zebra/z4-rotated.jpg']);
    }
  });

  it('resizes to one size when asked and adds a second split to the existing manifest', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store2'));
    const train = await importImageFolder({
      srcDir: src(),
      store,
      name: 'sized',
      shardSize: 10,
      resize: { width: 4, height: 4 },
      channels: 1,
    });
    expect(train.imported).toBe(IMAGES.length + 1);
    expect(train.manifest.imageSize).toEqual({ width: 4, height: 4, channels: 1 });
    expect(train.manifest.splits.train.decoded).toBeUndefined();
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
    expect(data).toMatchObject({ count: IMAGES.length + 1, channels: 1 });
    expect(uniformSize(data)).toEqual({ height: 4, width: 4 });
    const into = (options: object) =>
      importImageFolder({ srcDir: src(), store, name: 'sized', split: 'x', channels: 1, ...options });
    await expect(into({ resize: { width: 8, height: 8 } })).rejects.toThrow(
      'dataset "sized" exists with 4x4 images, resize asks for 8x8',
    );
    await expect(into({})).rejects.toThrow('dataset "sized" exists with 4x4 images; import with resize 4x4');
    await expect(
      importImageFolder({
        srcDir: src(),
        store,
        name: 'folder-own',
        resize: { width: 4, height: 4 },
        maxSide: 8,
      }),
    ).rejects.toThrow('import "folder-own": resize and maxSide exclude each other');
  });

  it('refuses to add a fixed-size split to a dataset whose images keep their own sizes', async () => {
    const store = new FsBlobStore(path.join(dir(), 'store3'));
    await importImageFolder({ srcDir: src(), store, name: 'own' });
    await expect(
      importImageFolder({ srcDir: src(), store, name: 'own', split: 'val', resize: { width: 4, height: 4 } }),
    ).rejects.toThrow(`dataset "own" keeps each image's own size; import it without resize`);
    const val = await importImageFolder({ srcDir: src(), store, name: 'own', split: 'val' });
    expect(Object.keys(val.manifest.splits).sort()).toEqual(['train', 'val']);
    expect(val.manifest.splits.val.decoded).toEqual(val.manifest.splits.train.decoded);
  });
});
