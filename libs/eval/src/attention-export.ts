import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { evalTransform, uniformImages } from '@dinoq/data';
import type { ParamTensors } from '@dinoq/dino';
import { clsAttention, imageAttention, type ClsAttention } from './attention';
import { maskColour } from './colormap';
import { DEFAULT_MASS_THRESHOLD, maskArea, upsampleNearest } from './masks';
import {
  denormalize,
  renderHeatmapOverlayPng,
  renderHeatmapPng,
  renderImagePng,
  renderMaskOverlayPng,
  renderMaskPng,
  viewScale,
} from './png-render';

/** A decoded picture to visualise: interleaved 8-bit pixels, gray or RGB. */
export interface ExportImage {
  pixels: Uint8Array;
  width: number;
  height: number;
  channels: number;
  /** Shown in the index (e.g. the uploaded file's name); files are named by position regardless. */
  name?: string;
}

export interface AttentionExportOptions {
  /** Fraction of attention mass each mask keeps (spec §13: 0.6). */
  threshold?: number;
  /** Integer enlargement of every PNG; default: the smallest that makes the side ≥ 128 px. */
  scale?: number;
  /** Images per forward pass. */
  batchSize?: number;
}

/** File names of one image's PNGs, relative to the export folder. */
export interface ExportedImageFiles {
  input: string;
  heads: string[];
  mean: string;
  headMasks: string[];
  meanMask: string;
  headOverlays: string[];
  overlay: string;
}

export interface ExportedImage {
  name: string;
  /** Size of the picture the model saw (the config's global crop size). */
  width: number;
  height: number;
  files: ExportedImageFiles;
  /** Fraction of the image each thresholded mask covers. */
  maskArea: { heads: number[]; mean: number };
}

/** `index.json` of an export: everything needed to lay out the PNGs without opening them. */
export interface AttentionExportIndex {
  threshold: number;
  patchSize: number;
  heads: number;
  imageSize: number;
  scale: number;
  images: ExportedImage[];
}

export interface AttentionExport {
  files: Record<string, Uint8Array>;
  index: AttentionExportIndex;
}

function checkImage(img: ExportImage, i: number): asserts img is ExportImage & { channels: 1 | 3 } {
  const what = `image ${i}${img.name ? ` ("${img.name}")` : ''}`;
  if (img.channels !== 1 && img.channels !== 3)
    throw new Error(`${what}: ${img.channels} channels, expected 1 (gray) or 3 (RGB)`);
  if (!(Number.isInteger(img.width) && Number.isInteger(img.height) && img.width > 0 && img.height > 0))
    throw new Error(`${what}: invalid size ${img.width}×${img.height}`);
  if (img.pixels.length !== img.width * img.height * img.channels)
    throw new Error(
      `${what}: ${img.pixels.length} bytes for ${img.width}×${img.height}×${img.channels} pixels`,
    );
}

/**
 * Last-layer [CLS] attention maps of each image as PNGs (spec §13), named flat:
 * `img{i}-input.png`, `img{i}-head{j}.png`, `img{i}-mean.png`, `img{i}-mask-head{j}.png`,
 * `img{i}-mask-mean.png`, `img{i}-overlay-head{j}.png` (mask tinted over the input) and
 * `img{i}-overlay.png` (mean heatmap over the input, mean mask outlined).
 *
 * Each image is prepared like an evaluation image: the largest centred square, bicubic-resized
 * to the config's global crop size (a multiple of the patch size), normalised. The reference
 * script instead stretches to 480 × 480; a square crop keeps the object's aspect ratio.
 */
export async function exportAttentionMaps(
  params: ParamTensors,
  config: RunConfig,
  images: readonly ExportImage[],
  opts: AttentionExportOptions = {},
): Promise<AttentionExport> {
  const threshold = opts.threshold ?? DEFAULT_MASS_THRESHOLD;
  const size = config.augment.globalCropSize;
  const patchSize = config.model.patchSize;
  const scale = opts.scale ?? viewScale(size);
  const batchSize = opts.batchSize ?? 16;
  const { mean, std } = config.augment;
  images.forEach(checkImage);

  const files: Record<string, Uint8Array> = {};
  const entries: ExportedImage[] = [];
  let heads = 0;
  for (let start = 0; start < images.length; start += batchSize) {
    const group = images.slice(start, start + batchSize);
    const frame = size * size * 3;
    const pixels = new Float32Array(group.length * frame);
    group.forEach((img, b) => {
      const source = uniformImages({
        images: img.pixels,
        count: 1,
        width: img.width,
        height: img.height,
        channels: img.channels as 1 | 3,
      });
      pixels.set(evalTransform(source, [0], size, mean, std), b * frame);
    });
    const x = tf.tensor4d(pixels, [group.length, size, size, 3]);
    let att: ClsAttention;
    try {
      att = clsAttention(params, config, x);
    } finally {
      x.dispose();
    }
    heads = att.heads;
    group.forEach((img, b) => {
      const i = start + b;
      const prefix = `img${i}`;
      const maps = imageAttention(att, b, threshold);
      const input = denormalize(pixels.subarray(b * frame, (b + 1) * frame), size, size, mean, std);
      const up = (m: Float32Array) => upsampleNearest(m, att.gridH, att.gridW, patchSize);
      const names: ExportedImageFiles = {
        input: `${prefix}-input.png`,
        heads: maps.heads.map((_, j) => `${prefix}-head${j}.png`),
        mean: `${prefix}-mean.png`,
        headMasks: maps.heads.map((_, j) => `${prefix}-mask-head${j}.png`),
        meanMask: `${prefix}-mask-mean.png`,
        headOverlays: maps.heads.map((_, j) => `${prefix}-overlay-head${j}.png`),
        overlay: `${prefix}-overlay.png`,
      };
      files[names.input] = renderImagePng(input, scale);
      maps.heads.forEach((h, j) => {
        files[names.heads[j]] = renderHeatmapPng(up(h), size, size, scale);
        files[names.headMasks[j]] = renderMaskPng(maps.headMasks[j], size, size, scale);
        files[names.headOverlays[j]] = renderMaskOverlayPng(input, maps.headMasks[j], scale, {
          colour: maskColour(j),
        });
      });
      files[names.mean] = renderHeatmapPng(up(maps.mean), size, size, scale);
      files[names.meanMask] = renderMaskPng(maps.meanMask, size, size, scale);
      files[names.overlay] = renderHeatmapOverlayPng(input, up(maps.mean), scale, { outline: maps.meanMask });
      entries.push({
        name: img.name ?? prefix,
        width: size,
        height: size,
        files: names,
        maskArea: { heads: maps.headMasks.map(maskArea), mean: maskArea(maps.meanMask) },
      });
    });
    // Give the event loop a turn between batches (job lock renewals, progress reports).
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return { files, index: { threshold, patchSize, heads, imageSize: size, scale, images: entries } };
}
