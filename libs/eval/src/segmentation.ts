import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { evalTransform, requireUniformSize, type DecodedSplit, type ImageSource } from '@dinoq/data';
import type { ParamTensors } from '@dinoq/dino';
import { clsAttention, imageAttention, type ClsAttention } from './attention';
import { jaccard } from './jaccard';
import { DEFAULT_MASS_THRESHOLD, maskArea } from './masks';

/**
 * How well the thresholded last-layer attention masks (spec §13) cover the object, scored by
 * the Jaccard index against a ground-truth foreground mask — the paper's segmentation probe,
 * on Fashion-MNIST instead of PASCAL VOC.
 */

/**
 * Ground truth for plain Fashion-MNIST: the object sits on an exactly black background, so
 * foreground = gray value > 10 (of 255). The small margin drops the faint antialiasing halo
 * (about 3 % of all pixels have values 1–10) without eating into dark garments, whose
 * interiors are rarely that dark.
 */
export const FOREGROUND_THRESHOLD = 10;

/** A split whose samples may carry ground-truth masks (`[count, height, width]`, nonzero = object). */
export type SegmentationSplit = DecodedSplit & { masks?: Uint8Array };

/** Foreground = any channel above `threshold`; one byte (0/1) per pixel. */
export function foregroundMasks(
  split: ImageSource,
  threshold = FOREGROUND_THRESHOLD,
  limit = split.count,
): Uint8Array {
  const count = Math.min(limit, split.count);
  const { height, width } = requireUniformSize(split, 'foreground masks');
  const n = height * width;
  const c = split.channels;
  const out = new Uint8Array(count * n);
  for (let i = 0; i < count * n; i++) {
    let on = false;
    for (let k = 0; k < c && !on; k++) on = split.images[i * c + k] > threshold;
    out[i] = on ? 1 : 0;
  }
  return out;
}

/**
 * A mask mapped onto the model's input the way evalTransform maps the image (largest centred
 * square, resized to size × size), with nearest-neighbour sampling so it stays binary.
 */
export function maskToEvalSize(
  mask: ArrayLike<number>,
  width: number,
  height: number,
  size: number,
): Uint8Array {
  if (mask.length !== width * height)
    throw new Error(`maskToEvalSize: ${mask.length} values for ${width}×${height}`);
  const side = Math.min(width, height);
  const top = Math.floor((height - side) / 2);
  const left = Math.floor((width - side) / 2);
  const out = new Uint8Array(size * size);
  for (let y = 0; y < size; y++) {
    const sy = top + Math.min(side - 1, Math.floor(((y + 0.5) * side) / size));
    for (let x = 0; x < size; x++) {
      const sx = left + Math.min(side - 1, Math.floor(((x + 0.5) * side) / size));
      out[y * size + x] = mask[sy * width + sx] ? 1 : 0;
    }
  }
  return out;
}

/** A centred square covering `areaFraction` of a size × size image (side rounded to whole pixels). */
export function centredBoxMask(size: number, areaFraction: number): Uint8Array {
  const side = Math.max(0, Math.min(size, Math.round(Math.sqrt(Math.max(0, areaFraction)) * size)));
  const start = Math.floor((size - side) / 2);
  const out = new Uint8Array(size * size);
  for (let y = start; y < start + side; y++) out.fill(1, y * size + start, y * size + start + side);
  return out;
}

/** Ground-truth masks of the first `count` images at the model's input size, 0/1. */
export function groundTruthAtEvalSize(
  split: SegmentationSplit,
  size: number,
  count: number,
  foregroundThreshold = FOREGROUND_THRESHOLD,
): Uint8Array[] {
  const { width, height } = requireUniformSize(split, 'segmentation ground truth');
  const n = width * height;
  const masks = split.masks ?? foregroundMasks(split, foregroundThreshold, count);
  if (masks.length < count * n)
    throw new Error(`segmentation: ${masks.length / n} ground-truth masks for ${count} images`);
  return Array.from({ length: count }, (_, i) =>
    maskToEvalSize(masks.subarray(i * n, (i + 1) * n), width, height, size),
  );
}

export interface CentredBoxScore {
  /** Mean Jaccard of the box over the images. */
  jaccard: number;
  side: number;
  /** The box's area: the mean ground-truth foreground fraction of the images. */
  areaFraction: number;
}

/**
 * The trivial baseline: one centred square for every image, covering the mean foreground area
 * of the evaluated images. It knows how big objects are on average but not where they are, so
 * it is strong on plain Fashion-MNIST (objects are centred and fill half the frame) and weak
 * when objects are placed at random.
 */
export function centredBoxScore(truth: readonly Uint8Array[], size: number): CentredBoxScore {
  if (truth.length === 0) throw new Error('centredBoxScore: no images');
  const areaFraction = truth.reduce((s, m) => s + maskArea(m), 0) / truth.length;
  const box = centredBoxMask(size, areaFraction);
  const score = truth.reduce((s, m) => s + jaccard(box, m), 0) / truth.length;
  return { jaccard: score, side: Math.round(Math.sqrt(maskArea(box)) * size), areaFraction };
}

export interface SegmentationOptions {
  /** Attention mass each mask keeps (spec §13: 0.6). */
  threshold?: number;
  /** Score only the first `limit` images. */
  limit?: number;
  batchSize?: number;
  /** Gray level separating object and background when the split carries no masks. */
  foregroundThreshold?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SegmentationScores {
  count: number;
  threshold: number;
  imageSize: number;
  /** Mean Jaccard of each head's mask. */
  heads: number[];
  /** Mean Jaccard of the mask of the head-averaged map. */
  mean: number;
  /** The head with the highest mean Jaccard. */
  bestHead: { head: number; jaccard: number };
  centredBox: CentredBoxScore;
  /** Mean fraction of the image each mask covers. */
  maskArea: { heads: number[]; mean: number };
  /** Mean ground-truth foreground fraction. */
  foregroundFraction: number;
}

/**
 * Jaccard of every head's 60 %-mass mask (and of the mean map's) against the ground truth,
 * averaged over the split; the masks and the truth are compared at the model's input size.
 * Ground truth: the split's `masks` when present, else `foregroundMasks` of its pixels.
 */
export async function segmentationScores(
  params: ParamTensors,
  config: RunConfig,
  split: SegmentationSplit,
  opts: SegmentationOptions = {},
): Promise<SegmentationScores> {
  const threshold = opts.threshold ?? DEFAULT_MASS_THRESHOLD;
  const count = Math.min(opts.limit ?? split.count, split.count);
  if (count === 0) throw new Error('segmentation: the split has no images');
  const size = config.augment.globalCropSize;
  const batchSize = opts.batchSize ?? 64;
  const truth = groundTruthAtEvalSize(split, size, count, opts.foregroundThreshold);
  let headSums: number[] = [];
  let headAreas: number[] = [];
  let meanSum = 0;
  let meanArea = 0;
  for (let start = 0; start < count; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, count - start) }, (_, i) => start + i);
    const pixels = evalTransform(split, indices, size, config.augment.mean, config.augment.std);
    const x = tf.tensor4d(pixels, [indices.length, size, size, 3]);
    let att: ClsAttention;
    try {
      att = clsAttention(params, config, x);
    } finally {
      x.dispose();
    }
    if (headSums.length === 0) {
      headSums = new Array<number>(att.heads).fill(0);
      headAreas = new Array<number>(att.heads).fill(0);
    }
    indices.forEach((index, b) => {
      const maps = imageAttention(att, b, threshold);
      maps.headMasks.forEach((m, h) => {
        headSums[h] += jaccard(m, truth[index]);
        headAreas[h] += maskArea(m);
      });
      meanSum += jaccard(maps.meanMask, truth[index]);
      meanArea += maskArea(maps.meanMask);
    });
    opts.onProgress?.(start + indices.length, count);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const heads = headSums.map((s) => s / count);
  const best = heads.reduce((b, j, h) => (j > heads[b] ? h : b), 0);
  const centredBox = centredBoxScore(truth, size);
  return {
    count,
    threshold,
    imageSize: size,
    heads,
    mean: meanSum / count,
    bestHead: { head: best, jaccard: heads[best] },
    centredBox,
    maskArea: { heads: headAreas.map((a) => a / count), mean: meanArea / count },
    foregroundFraction: centredBox.areaFraction,
  };
}
