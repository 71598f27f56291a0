import { encodePng } from '@dinoq/data';
import { colorize } from './colormap';

/**
 * PNGs of attention maps a person can look at: heatmaps, binary masks and overlays on the
 * input, all enlarged by an integer nearest-neighbour factor so that a 32-px model input
 * becomes a 128-px picture whose patches stay crisp squares.
 */

/** Interleaved 8-bit RGB, row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Smallest side a rendered picture should have. */
export const MIN_VIEW_SIDE = 128;

/** The integer enlargement that brings `side` to at least `minSide` pixels. */
export function viewScale(side: number, minSide = MIN_VIEW_SIDE): number {
  if (!(side > 0)) throw new Error(`viewScale: side must be positive, got ${side}`);
  return Math.max(1, Math.ceil(minSide / side));
}

function checkScale(scale: number): void {
  if (!Number.isInteger(scale) || scale < 1)
    throw new Error(`scale must be a positive integer, got ${scale}`);
}

/** Nearest-neighbour enlargement of interleaved pixels by an integer factor. */
export function scaleNearest(
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
  scale: number,
): Uint8Array {
  checkScale(scale);
  if (data.length !== width * height * channels)
    throw new Error(`scaleNearest: ${data.length} bytes for ${width}×${height}×${channels}`);
  if (scale === 1) return data;
  const outWidth = width * scale;
  const out = new Uint8Array(outWidth * height * scale * channels);
  for (let y = 0; y < height * scale; y++) {
    const src = Math.floor(y / scale) * width;
    for (let x = 0; x < outWidth; x++) {
      const s = (src + Math.floor(x / scale)) * channels;
      const d = (y * outWidth + x) * channels;
      for (let c = 0; c < channels; c++) out[d + c] = data[s + c];
    }
  }
  return out;
}

/**
 * Normalised NHWC floats of one image (evalTransform's output) back to 8-bit RGB:
 * x·std + mean, times 255, rounded and clamped.
 */
export function denormalize(
  pixels: Float32Array,
  width: number,
  height: number,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
): RgbImage {
  if (pixels.length !== width * height * 3)
    throw new Error(`denormalize: ${pixels.length} values for a ${width}×${height} RGB image`);
  const data = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const c = i % 3;
    const v = Math.round((pixels[i] * std[c] + mean[c]) * 255);
    data[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return { data, width, height };
}

/** The input picture, enlarged. */
export function renderImagePng(image: RgbImage, scale: number): Uint8Array {
  const { data, width, height } = image;
  return encodePng(scaleNearest(data, width, height, 3, scale), width * scale, height * scale, 3);
}

/** An inferno heatmap of `values` (`height × width`, any range: scaled by its own min/max). */
export function renderHeatmapPng(
  values: ArrayLike<number>,
  width: number,
  height: number,
  scale: number,
): Uint8Array {
  if (values.length !== width * height)
    throw new Error(`renderHeatmapPng: ${values.length} values for ${width}×${height}`);
  return encodePng(scaleNearest(colorize(values), width, height, 3, scale), width * scale, height * scale, 3);
}

/** A black-and-white mask (nonzero → 255), one gray channel. */
export function renderMaskPng(
  mask: ArrayLike<number>,
  width: number,
  height: number,
  scale: number,
): Uint8Array {
  if (mask.length !== width * height)
    throw new Error(`renderMaskPng: ${mask.length} values for ${width}×${height}`);
  const gray = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) gray[i] = mask[i] ? 255 : 0;
  return encodePng(scaleNearest(gray, width, height, 1, scale), width * scale, height * scale, 1);
}

/** 1 where a pixel is on and one of its 4 neighbours is off: the mask's outline. */
export function maskContour(mask: ArrayLike<number>, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height);
  const on = (x: number, y: number) =>
    x >= 0 && y >= 0 && x < width && y < height && mask[y * width + x] !== 0;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      if (!on(x, y)) continue;
      const inside = [
        [x - 1, y],
        [x + 1, y],
        [x, y - 1],
        [x, y + 1],
      ].every(([nx, ny]) => nx < 0 || ny < 0 || nx >= width || ny >= height || on(nx, ny));
      if (!inside) out[y * width + x] = 1;
    }
  return out;
}

function blend(base: number, top: number, alpha: number): number {
  return Math.round((1 - alpha) * base + alpha * top);
}

export interface MaskOverlayOptions {
  colour: readonly [number, number, number];
  /** Opacity of the colour over masked pixels; the reference draws its masks at 0.5. */
  alpha?: number;
  /** Draw the mask's outline in the solid colour, as the reference's contour lines. Default true. */
  contour?: boolean;
}

/** The input with the mask tinted in `colour` (the reference's `mask_th…_head….png`). */
export function renderMaskOverlayPng(
  image: RgbImage,
  mask: ArrayLike<number>,
  scale: number,
  opts: MaskOverlayOptions,
): Uint8Array {
  const { width, height } = image;
  if (mask.length !== width * height)
    throw new Error(`renderMaskOverlayPng: mask has ${mask.length} values for a ${width}×${height} image`);
  const alpha = opts.alpha ?? 0.5;
  const w = width * scale;
  const h = height * scale;
  const big = scaleNearest(image.data, width, height, 3, scale);
  const bigMask = scaleNearest(
    Uint8Array.from(mask, (v) => (v ? 1 : 0)),
    width,
    height,
    1,
    scale,
  );
  const edge = opts.contour === false ? null : maskContour(bigMask, w, h);
  const out = new Uint8Array(big.length);
  for (let i = 0; i < w * h; i++)
    for (let c = 0; c < 3; c++) {
      const base = big[i * 3 + c];
      out[i * 3 + c] = edge?.[i] ? opts.colour[c] : bigMask[i] ? blend(base, opts.colour[c], alpha) : base;
    }
  return encodePng(out, w, h, 3);
}

/**
 * The input under a semi-transparent inferno heatmap (alpha 0.5 by default), with an optional
 * mask outline in white on top.
 */
export function renderHeatmapOverlayPng(
  image: RgbImage,
  values: ArrayLike<number>,
  scale: number,
  opts: { alpha?: number; outline?: ArrayLike<number> } = {},
): Uint8Array {
  const { width, height } = image;
  if (values.length !== width * height)
    throw new Error(`renderHeatmapOverlayPng: ${values.length} values for a ${width}×${height} image`);
  const alpha = opts.alpha ?? 0.5;
  const w = width * scale;
  const h = height * scale;
  const big = scaleNearest(image.data, width, height, 3, scale);
  const heat = scaleNearest(colorize(values), width, height, 3, scale);
  const edge = opts.outline
    ? maskContour(
        scaleNearest(
          Uint8Array.from(opts.outline, (v) => (v ? 1 : 0)),
          width,
          height,
          1,
          scale,
        ),
        w,
        h,
      )
    : null;
  const out = new Uint8Array(big.length);
  for (let i = 0; i < w * h; i++)
    for (let c = 0; c < 3; c++)
      out[i * 3 + c] = edge?.[i] ? 255 : blend(big[i * 3 + c], heat[i * 3 + c], alpha);
  return encodePng(out, w, h, 3);
}
