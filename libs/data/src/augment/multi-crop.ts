import type { AugmentConfig } from '@dinoq/config';
import { imageAt, type ImageSource } from '../images';
import { resizeCrop } from './bicubic-resize';
import { colorJitter } from './color-jitter';
import { gaussianBlur } from './gaussian-blur';
import { grayscale, normalizeInto, solarize, toRgbFloat } from './pixel-ops';
import { sampleCropBox } from './random-resized-crop';
import { augmentRng, uniform, type Rng } from './rng';

export interface ViewSpec {
  kind: 'global' | 'local';
  size: number;
  scale: readonly [number, number];
  blurProbability: number;
  blurSigma: readonly [number, number];
  solarizeProbability: number;
}

/**
 * DINO's views (spec §8): two global crops that differ in blur (always vs 10 %) and solarize
 * (never vs 20 %) so the teacher sees two differently distorted versions, then the local crops.
 */
export function multiCropViews(cfg: AugmentConfig): ViewSpec[] {
  const [blur1, blur2, blurLocal] = cfg.blurProbabilities;
  const global = {
    kind: 'global',
    size: cfg.globalCropSize,
    scale: cfg.globalCropsScale,
    blurSigma: cfg.blurSigma,
  } as const;
  const local: ViewSpec = {
    kind: 'local',
    size: cfg.localCropSize,
    scale: cfg.localCropsScale,
    blurProbability: blurLocal,
    blurSigma: cfg.blurSigma,
    solarizeProbability: 0,
  };
  return [
    { ...global, blurProbability: blur1, solarizeProbability: 0 },
    { ...global, blurProbability: blur2, solarizeProbability: cfg.solarizeProbability },
    ...Array.from({ length: cfg.localCropsNumber }, () => ({ ...local })),
  ];
}

const FLIP_P = 0.5;
const JITTER_P = 0.8;
const GRAYSCALE_P = 0.2;

/**
 * One view of one image: crop → flip → colour jitter → grayscale → blur → solarize, on
 * [0, 255] floats. The probability tests follow the reference (`u ≤ p` for jitter and blur,
 * `u < p` for the others). The flip is drawn before the resize, which draws nothing (so the
 * sequence of draws is the reference's), and done by it.
 */
export function augmentView(
  src: Float32Array,
  height: number,
  width: number,
  view: ViewSpec,
  rng: Rng,
  out: Float32Array = new Float32Array(view.size * view.size * 3),
): Float32Array {
  const box = sampleCropBox(rng, height, width, view.scale);
  const flip = rng() < FLIP_P;
  const img = resizeCrop(src, width, box, view.size, view.size, flip);
  if (rng() <= JITTER_P) colorJitter(img, rng);
  if (rng() < GRAYSCALE_P) grayscale(img);
  if (rng() <= view.blurProbability) gaussianBlur(img, uniform(rng, view.blurSigma[0], view.blurSigma[1]));
  if (view.solarizeProbability > 0 && rng() < view.solarizeProbability) solarize(img);
  return img.toInterleaved(out);
}

export interface AugmentedBatch {
  /** One NHWC [batch, size, size, 3] array per view: global1, global2, local1…localN. */
  views: Float32Array[];
  sizes: number[];
  batch: number;
  /** Time spent computing the batch on this thread, without the pauses that yield to others. */
  busyMs: number;
}

export function checkIndex(source: ImageSource, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= source.count)
    throw new Error(`image index ${index} is outside the dataset (0..${source.count - 1})`);
}

// Hand the event loop back every few images so timers (job lock renewals, progress) keep running.
const YIELD_EVERY = 16;

/**
 * DINO multi-crop for a batch; each image is cropped from its own size and aspect, as the reference's
 * RandomResizedCrop sees the original image. The draws for image `i` depend only on (seed, epoch, key), where the
 * key is `i` itself (an index into a whole decoded split) unless `keys` gives each batch entry its
 * own (a streamed batch holds only its own images, keyed by their index in the split); so the same
 * inputs give bit-identical outputs whatever the batch composition or order.
 */
export async function augmentBatch(
  images: ImageSource,
  indices: readonly number[],
  cfg: AugmentConfig,
  options: { seed: number; epoch: number; keys?: readonly number[] },
): Promise<AugmentedBatch> {
  const { keys } = options;
  if (keys && keys.length !== indices.length)
    throw new Error(`augmentation keys: ${keys.length} keys for ${indices.length} images`);
  const views = multiCropViews(cfg);
  const batch = indices.length;
  const outputs = views.map((v) => new Float32Array(batch * v.size * v.size * 3));
  // One float copy of the current image, grown to the largest seen; each view crops it at its own size.
  let src = new Float32Array(0);
  // One working image per crop size, reused: each view is normalised out before the next starts.
  const work = new Map(views.map((v) => [v.size, new Float32Array(v.size * v.size * 3)]));
  let busyMs = 0;
  let chunkStart = performance.now();
  for (const [b, index] of indices.entries()) {
    checkIndex(images, index);
    const { pixels, height, width } = imageAt(images, index);
    const floats = height * width * 3;
    if (src.length < floats) src = new Float32Array(floats);
    const rgb = toRgbFloat(pixels, images.channels, src.subarray(0, floats));
    const rng = augmentRng(options.seed, options.epoch, keys ? keys[b] : index);
    for (const [v, view] of views.entries()) {
      const img = augmentView(rgb, height, width, view, rng, work.get(view.size));
      normalizeInto(img, cfg.mean, cfg.std, outputs[v], b * img.length);
    }
    if ((b + 1) % YIELD_EVERY === 0) {
      busyMs += performance.now() - chunkStart;
      await new Promise<void>((resolve) => setImmediate(resolve));
      chunkStart = performance.now();
    }
  }
  busyMs += performance.now() - chunkStart;
  return { views: outputs, sizes: views.map((v) => v.size), batch, busyMs };
}
