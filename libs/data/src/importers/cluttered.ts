import * as path from 'node:path';
import seedrandom from 'seedrandom';
import type { BlobStore } from '../blob-store';
import { createDecodeCounter, decodeSample } from '../decode';
import {
  fixedImageSize,
  MANIFEST_VERSION,
  splitOf,
  writeManifest,
  type DatasetManifest,
  type SplitInfo,
} from '../manifest';
import { encodePng } from '../png';
import { ShardWriter } from '../shard-writer';
import { readSplitSamples } from '../shard-reader';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, sampleKey } from './fashion-mnist';
import { readIdxImagesAndLabels } from './idx';

/**
 * Cluttered Fashion-MNIST: each garment pasted at a random position and scale onto a textured
 * background, with its exact foreground mask stored beside it as `<key>.mask.png`. On plain
 * Fashion-MNIST an attention map can look like a segmentation just by avoiding the black
 * border; here the background is busy (smooth noise, gradients, stripes, dimmed pieces of other
 * garments) and the object is off-centre, so only a network that finds the object scores well.
 * Every sample is a pure function of (seed, split, index).
 */

/** An object pixel belongs to the mask when its resized gray value exceeds this (of 255). */
export const CLUTTERED_OBJECT_THRESHOLD = 10;

export interface ClutterSource {
  /** Gray images, `[count, height, width]`. */
  images: Uint8Array;
  count: number;
  height: number;
  width: number;
}

export interface ClutteredSample {
  /** Gray pixels, canvas × canvas. */
  image: Uint8Array;
  /** 255 on the object, 0 elsewhere, canvas × canvas. */
  mask: Uint8Array;
  /** Where the object's resized square was pasted (top-left corner and side, in pixels). */
  placement: { x: number; y: number; size: number };
}

export interface ClutterOptions {
  seed: number;
  /** Canvas side in pixels. */
  canvas: number;
  /** Part of the sample's identity: the same index in another split gets other draws. */
  split: string;
}

type Rng = () => number;

const between = (rng: Rng, lo: number, hi: number) => lo + (hi - lo) * rng();
const intBetween = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

/** Bilinear resize of a gray square (pixel centres aligned, edges clamped). */
function resizeGray(src: Uint8Array, side: number, out: number): Float32Array {
  const dst = new Float32Array(out * out);
  const scale = side / out;
  for (let y = 0; y < out; y++) {
    const sy = Math.min(side - 1, Math.max(0, (y + 0.5) * scale - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(side - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < out; x++) {
      const sx = Math.min(side - 1, Math.max(0, (x + 0.5) * scale - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(side - 1, x0 + 1);
      const fx = sx - x0;
      const top = src[y0 * side + x0] * (1 - fx) + src[y0 * side + x1] * fx;
      const bottom = src[y1 * side + x0] * (1 - fx) + src[y1 * side + x1] * fx;
      dst[y * out + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return dst;
}

/** Value noise: a coarse random grid, bilinearly interpolated over the canvas, in [0, 1]. */
function smoothNoise(rng: Rng, canvas: number): Float32Array {
  const grid = intBetween(rng, 3, 7);
  const cells = Float32Array.from({ length: (grid + 1) * (grid + 1) }, () => rng());
  const out = new Float32Array(canvas * canvas);
  for (let y = 0; y < canvas; y++) {
    const gy = (y / canvas) * grid;
    const y0 = Math.floor(gy);
    const fy = gy - y0;
    for (let x = 0; x < canvas; x++) {
      const gx = (x / canvas) * grid;
      const x0 = Math.floor(gx);
      const fx = gx - x0;
      const at = (cx: number, cy: number) => cells[cy * (grid + 1) + cx];
      const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
      const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
      out[y * canvas + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** Position along a random direction, scaled to [0, 1] across the canvas. */
function directional(rng: Rng, canvas: number): (x: number, y: number) => number {
  const angle = between(rng, 0, 2 * Math.PI);
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  const lo = Math.min(0, c) * canvas + Math.min(0, s) * canvas;
  const span = (Math.abs(c) + Math.abs(s)) * canvas;
  return (x, y) => (x * c + y * s - lo) / span;
}

/** The textured background, gray levels as floats in [0, 255]. */
function background(rng: Rng, source: ClutterSource, index: number, canvas: number): Float32Array {
  const bg = new Float32Array(canvas * canvas).fill(between(rng, 0, 60));
  // Each texture joins with probability 1/2; at least one always does.
  let kinds = [0, 1, 2, 3].filter(() => rng() < 0.5);
  if (kinds.length === 0) kinds = [intBetween(rng, 0, 3)];
  for (const kind of kinds) {
    if (kind === 0) {
      const amplitude = between(rng, 40, 110);
      const noise = smoothNoise(rng, canvas);
      for (let i = 0; i < bg.length; i++) bg[i] += amplitude * noise[i];
    } else if (kind === 1) {
      const amplitude = between(rng, 30, 100);
      const t = directional(rng, canvas);
      for (let y = 0; y < canvas; y++)
        for (let x = 0; x < canvas; x++) bg[y * canvas + x] += amplitude * t(x, y);
    } else if (kind === 2) {
      const amplitude = between(rng, 20, 70);
      const period = between(rng, 3, 10);
      const phase = between(rng, 0, 2 * Math.PI);
      const angle = between(rng, 0, Math.PI);
      const [c, s] = [Math.cos(angle), Math.sin(angle)];
      for (let y = 0; y < canvas; y++)
        for (let x = 0; x < canvas; x++)
          bg[y * canvas + x] +=
            amplitude * (0.5 + 0.5 * Math.sin((2 * Math.PI * (x * c + y * s)) / period + phase));
    } else {
      // Dimmed pieces of other garments: texture with the statistics of real objects.
      const pieces = intBetween(rng, 1, 3);
      for (let p = 0; p < pieces && source.count > 1; p++) {
        let other = intBetween(rng, 0, source.count - 2);
        if (other >= index) other++;
        const frame = source.width * source.height;
        const side = Math.round(source.width * between(rng, 0.5, 1));
        const piece = resizeGray(
          source.images.subarray(other * frame, (other + 1) * frame),
          source.width,
          side,
        );
        const dim = between(rng, 0.25, 0.5);
        const ox = intBetween(rng, -Math.floor(side / 2), canvas - Math.ceil(side / 2));
        const oy = intBetween(rng, -Math.floor(side / 2), canvas - Math.ceil(side / 2));
        for (let y = 0; y < side; y++)
          for (let x = 0; x < side; x++) {
            const cx = ox + x;
            const cy = oy + y;
            if (cx < 0 || cy < 0 || cx >= canvas || cy >= canvas) continue;
            const v = dim * piece[y * side + x];
            if (v > bg[cy * canvas + cx]) bg[cy * canvas + cx] = v;
          }
      }
    }
  }
  return bg;
}

/**
 * One cluttered sample: source image `index` resized to a random side in [0.5, 0.85]·canvas,
 * pasted at a random position fully inside the canvas over a random background. Object pixels
 * above CLUTTERED_OBJECT_THRESHOLD replace the background and form the mask; fainter ones
 * (the antialiased rim) let the background show, so mask and image agree pixel for pixel.
 */
export function renderClutteredSample(
  source: ClutterSource,
  index: number,
  opts: ClutterOptions,
): ClutteredSample {
  if (source.width !== source.height)
    throw new Error(`cluttered: source images must be square, got ${source.width}×${source.height}`);
  if (!Number.isInteger(index) || index < 0 || index >= source.count)
    throw new Error(`cluttered: image ${index} is outside the source (0..${source.count - 1})`);
  const { canvas } = opts;
  if (!Number.isInteger(canvas) || canvas < 16)
    throw new Error(`cluttered: canvas must be an integer ≥ 16, got ${canvas}`);
  const rng = seedrandom.alea(`${opts.seed}|cluttered|${opts.split}|${index}`);
  const bg = background(rng, source, index, canvas);
  const size = Math.max(8, Math.round(canvas * between(rng, 0.5, 0.85)));
  const x0 = intBetween(rng, 0, canvas - size);
  const y0 = intBetween(rng, 0, canvas - size);
  const frame = source.width * source.height;
  const object = resizeGray(source.images.subarray(index * frame, (index + 1) * frame), source.width, size);
  const image = new Uint8Array(canvas * canvas);
  const mask = new Uint8Array(canvas * canvas);
  for (let i = 0; i < bg.length; i++) image[i] = Math.min(255, Math.round(bg[i]));
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const v = Math.round(object[y * size + x]);
      if (v <= CLUTTERED_OBJECT_THRESHOLD) continue;
      const at = (y0 + y) * canvas + x0 + x;
      image[at] = v;
      mask[at] = 255;
    }
  return { image, mask, placement: { x: x0, y: y0, size } };
}

export interface ImportClutteredOptions {
  /** Folder with the Fashion-MNIST IDX files. */
  srcDir?: string;
  store: BlobStore;
  name: string;
  /** First `limit` images of each split. */
  limit?: number;
  seed?: number;
  /** Canvas side; 48 leaves room to move a garment around and still divides by 4, 8, 16 and 48. */
  canvas?: number;
  shardSize?: number;
  /** Which splits to write (default both). */
  splits?: readonly ('train' | 'test')[];
}

const SOURCES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

/**
 * Writes the cluttered variant of both splits (`<key>.png` gray, `<key>.cls`, `<key>.mask.png`)
 * and the manifest last. The manifest schema has no field for masks; readers find them with
 * `loadMasks`, which fails naming the first sample without one.
 */
export async function importClutteredFashionMnist(options: ImportClutteredOptions): Promise<DatasetManifest> {
  const srcDir = options.srcDir ?? FASHION_MNIST_DIR;
  const canvas = options.canvas ?? 48;
  const seed = options.seed ?? 0;
  const splits: Record<string, SplitInfo> = {};
  for (const split of options.splits ?? (['train', 'test'] as const)) {
    const files = SOURCES[split];
    if (!files) throw new Error(`cluttered: unknown split "${split}" (train or test)`);
    const src = await readIdxImagesAndLabels(
      path.join(srcDir, files.images),
      path.join(srcDir, files.labels),
      FASHION_MNIST_CLASSES.length,
    );
    const count = Math.min(src.count, options.limit ?? Infinity);
    const writer = new ShardWriter(options.store, {
      dataset: options.name,
      split,
      shardSize: options.shardSize ?? 10000,
    });
    for (let i = 0; i < count; i++) {
      const sample = renderClutteredSample(src, i, { seed, canvas, split });
      await writer.add({
        key: sampleKey(i),
        image: encodePng(sample.image, canvas, canvas, 1),
        label: src.labels[i],
        mask: encodePng(sample.mask, canvas, canvas, 1),
      });
    }
    splits[split] = await writer.finish();
  }
  const manifest: DatasetManifest = {
    name: options.name,
    version: MANIFEST_VERSION,
    imageSize: { width: canvas, height: canvas, channels: 1 },
    classes: [...FASHION_MNIST_CLASSES],
    splits,
    createdAt: new Date().toISOString(),
  };
  await writeManifest(options.store, manifest);
  return manifest;
}

export interface LoadedMasks {
  /** `[count, height, width]`, one byte per pixel as stored (0 or 255 for this importer). */
  masks: Uint8Array;
  count: number;
  height: number;
  width: number;
}

/**
 * The `<key>.mask.png` members of a split, aligned with `loadSplit`'s images: samples are decoded
 * with the same rules, so a sample loadSplit skips (undecodable image or mask, wrong size) is
 * skipped here too.
 */
export async function loadMasks(
  store: BlobStore,
  manifest: DatasetManifest,
  split: string,
  options: { limit?: number; channels?: 1 | 3 } = {},
): Promise<LoadedMasks> {
  const size = fixedImageSize(manifest, 'loading masks');
  const { width, height } = size;
  const channels = options.channels ?? size.channels;
  const capacity = Math.min(options.limit ?? Infinity, splitOf(manifest, split).count);
  const frame = width * height;
  const masks = new Uint8Array(capacity * frame);
  const counter = createDecodeCounter();
  let count = 0;
  for await (const sample of readSplitSamples(store, manifest, split, { limit: options.limit })) {
    const decoded = await decodeSample(sample, { channels, width, height }, counter);
    if (!decoded || count >= capacity) continue;
    if (!decoded.mask)
      throw new Error(`dataset "${manifest.name}" split "${split}": sample ${sample.key} has no mask member`);
    masks.set(decoded.mask, count * frame);
    count++;
  }
  return { masks: count === capacity ? masks : masks.slice(0, count * frame), count, height, width };
}
