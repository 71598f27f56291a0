import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import { parseRunConfig, type AugmentConfig } from '@dinoq/config';
import { AugmentPool } from '../src/augment/augment-pool';
import { augmentBatch } from '../src/augment/multi-crop';
import * as randomResizedCrop from '../src/augment/random-resized-crop';
import { FsBlobStore } from '../src/fs-blob-store';
import { ImageSourceBuilder, imageAt, uniformImages, type ImageSource } from '../src/images';
import { importImageFolder } from '../src/importers/image-folder';
import { loadSplit } from '../src/load-split';
import type { DatasetManifest } from '../src/manifest';
import { StreamingAugmentPool } from '../src/streaming/augment-pool';
import { StreamingSampleOrder } from '../src/streaming/sample-order';
import { ShardCache } from '../src/streaming/shard-cache';
import { StreamingBatches } from '../src/streaming/streaming-batches';
import { StreamingSplitReader } from '../src/streaming/streaming-reader';
import { trainingBatch, type TrainingBatch } from '../src/training-batches';
import { useTempDir } from './helpers';

/*
 * Datasets whose images keep their own sizes: both data paths give the same batches, and every
 * image is cropped from its own size and aspect.
 */

const cfg: AugmentConfig = parseRunConfig({
  model: { patchSize: 4 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
}).augment;
const seed = 5;
const batchSize = 6;

/** Textured pixels that differ per image, so every crop has something to show. */
function texture(width: number, height: number, channels: number, salt: number): Uint8Array {
  const px = new Uint8Array(width * height * channels);
  for (let i = 0; i < px.length; i++) px[i] = (i * 31 + salt * 57 + ((i * salt) % 13) * 9) & 0xff;
  return px;
}

/** A source of the given sizes (width, height), textured. */
function ownSizeSource(sizes: [number, number][], channels: 1 | 3 = 3): ImageSource {
  const bytes = sizes.reduce((sum, [w, h]) => sum + w * h * channels, 0);
  const builder = new ImageSourceBuilder(channels, sizes.length, bytes);
  sizes.forEach(([w, h], i) => builder.add(texture(w, h, channels, i + 1), h, w));
  return builder.finish();
}

function sameViews(a: TrainingBatch, b: TrainingBatch): void {
  expect([b.step, b.epoch, b.indices, b.sizes]).toEqual([a.step, a.epoch, a.indices, a.sizes]);
  b.views.forEach((view, v) =>
    expect([a.step, v, Buffer.from(view.buffer).equals(Buffer.from(a.views[v].buffer))]).toEqual([
      a.step,
      v,
      true,
    ]),
  );
}

describe('images of their own sizes', () => {
  const tmp = useTempDir('own-size');
  let store: FsBlobStore;
  let manifest: DatasetManifest;

  beforeAll(async () => {
    // 27 images in three classes, each its own size and aspect (wide, tall, square), PNG and JPEG.
    const src = path.join(tmp(), 'src');
    for (let i = 0; i < 27; i++) {
      const [width, height] = [12 + ((i * 7) % 29), 12 + ((i * 11) % 23)];
      const img = sharp(Buffer.from(texture(width, height, 3, i)), { raw: { width, height, channels: 3 } });
      const file = path.join(src, `class${i % 3}`, `img${i}.${i % 2 ? 'jpg' : 'png'}`);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, await (i % 2 ? img.jpeg({ quality: 90 }) : img.png()).toBuffer());
    }
    store = new FsBlobStore(path.join(tmp(), 'store'));
    ({ manifest } = await importImageFolder({ srcDir: src, store, name: 'own', shardSize: 8 }));
  });

  it('memory and streaming give bit-identical training batches', async () => {
    const order = StreamingSampleOrder.forSplit(manifest.splits.train, seed, 8);
    const held = await loadSplit(store, manifest, 'train');
    expect(held.count).toBe(27);
    const pool = AugmentPool.start(held, 2);
    const streamPool = StreamingAugmentPool.start(2);
    const cache = await ShardCache.open({
      store,
      dataset: 'own',
      dir: path.join(tmp(), 'cache'),
      maxBytes: 1 << 30,
    });
    const reader = new StreamingSplitReader({ manifest, split: 'train', cache, order });
    const steps = 9; // two epochs of four steps, and one more
    const threaded = new StreamingBatches({
      reader,
      cfg,
      batchSize,
      fromStep: 0,
      toStep: steps,
      pool: streamPool,
    });
    const inline = new StreamingBatches({ reader, cfg, batchSize, fromStep: 0, toStep: steps });
    try {
      for (let step = 0; step < steps; step++) {
        const memory = await trainingBatch(held, cfg, { seed, batchSize, order }, step);
        const memoryThreads = await trainingBatch(held, cfg, { seed, batchSize, order, pool }, step);
        const streamed = (await threaded.next())!;
        const streamedInline = (await inline.next())!;
        sameViews(memory, memoryThreads);
        sameViews(memory, streamed);
        sameViews(memory, streamedInline);
        expect(Array.from(streamed.labels)).toEqual(memory.indices.map((i) => held.labels[i]));
      }
    } finally {
      await Promise.all([threaded.close(), inline.close(), pool.close(), streamPool.close()]);
    }
  });

  it('crops every image from its own size: a wide image gives wider boxes than a tall one', async () => {
    // 64 wide × 32 high, 32 × 64, 40 × 40.
    const source = ownSizeSource([
      [64, 32],
      [32, 64],
      [40, 40],
    ]);
    const spy = jest.spyOn(randomResizedCrop, 'sampleCropBox');
    const calls: { image: number; height: number; width: number; box: randomResizedCrop.CropBox }[] = [];
    try {
      for (let epoch = 0; epoch < 40; epoch++) {
        spy.mockClear();
        await augmentBatch(source, [0, 1, 2], cfg, { seed, epoch });
        const views = 2 + cfg.localCropsNumber;
        spy.mock.calls.forEach(([, height, width], k) =>
          calls.push({ image: Math.floor(k / views), height, width, box: spy.mock.results[k].value }),
        );
      }
    } finally {
      spy.mockRestore();
    }
    for (const { image, height, width, box } of calls) {
      expect([image, height, width]).toEqual([image, source.heights[image], source.widths[image]]);
      expect(box.left + box.width).toBeLessThanOrEqual(width);
      expect(box.top + box.height).toBeLessThanOrEqual(height);
    }
    // Mean log aspect (log w/h): symmetric, so a tall image mirrors a wide one.
    const meanLogAspect = (image: number) => {
      const own = calls.filter((c) => c.image === image);
      return own.reduce((sum, c) => sum + Math.log(c.box.width / c.box.height), 0) / own.length;
    };
    expect(meanLogAspect(0)).toBeGreaterThan(0.05);
    expect(meanLogAspect(1)).toBeLessThan(-0.05);
    expect(Math.abs(meanLogAspect(2))).toBeLessThan(0.05);
    // The wide image's boxes reach its right half, which a square crop of it would never show.
    expect(calls.some((c) => c.image === 0 && c.box.left + c.box.width > 48)).toBe(true);
  });

  it('augments each image as if it were alone: the views depend only on its pixels and key', async () => {
    const source = ownSizeSource(
      [
        [30, 18],
        [14, 26],
        [20, 20],
        [9, 40],
      ],
      1,
    );
    const batch = await augmentBatch(source, [3, 0, 2, 1], cfg, { seed, epoch: 2 });
    for (const [b, index] of [3, 0, 2, 1].entries()) {
      const { pixels, height, width } = imageAt(source, index);
      const alone = uniformImages({ images: pixels, count: 1, height, width, channels: 1 });
      const single = await augmentBatch(alone, [0], cfg, { seed, epoch: 2, keys: [index] });
      single.views.forEach((view, v) => {
        const part = batch.views[v].subarray(b * view.length, (b + 1) * view.length);
        expect([index, v, Buffer.from(part.slice().buffer).equals(Buffer.from(view.buffer))]).toEqual([
          index,
          v,
          true,
        ]);
      });
    }
  });
});
