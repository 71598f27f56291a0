import type { CropBox } from './random-resized-crop';

/**
 * Bicubic resampling of a crop, the way PIL does it (Keys cubic with a = −0.5, support widened
 * by the scale factor when shrinking, so downscaling is antialiased). Works on 3-channel HWC
 * floats and does not round to 8 bits between passes.
 *
 * Matches PIL's float ("F" mode) resize to within float rounding, checked against Pillow 9.4.
 *
 * Crop + resize runs here rather than in sharp because sharp's per-call overhead dominates at
 * this scale. Measured on 64 Fashion-MNIST images × 6 views (2 × 32 px + 4 × 16 px crops),
 * median of 6 batches on this 2-core machine under other load: sharp (`extract` +
 * `resize(kernel: 'cubic')` on raw input, one call per view) 342 ms per batch sequentially and
 * 298 ms with 4 or 8 calls in flight; this code 13 ms per batch.
 */

const A = -0.5;

function cubic(x: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * A;
  return 0;
}

interface Taps {
  /** First source index for each output index. */
  start: Int32Array;
  count: Int32Array;
  /** `taps` weights per output index, normalised to sum to 1. */
  weights: Float32Array;
  taps: number;
}

function resampleTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * taps);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      const w = cubic((k + lo - center + 0.5) / filterScale);
      weights[o * taps + k] = w;
      sum += w;
    }
    if (sum !== 0) for (let k = 0; k < n; k++) weights[o * taps + k] /= sum;
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, taps };
}

/** Horizontal pass of one source row (starting at `row`) into `dst` at `d`. */
function horizontalRow(src: Float32Array, row: number, h: Taps, dst: Float32Array, d: number): void {
  const { start, count, weights, taps } = h;
  for (let x = 0, base = 0; x < start.length; x++, base += taps, d += 3) {
    let r = 0;
    let g = 0;
    let b = 0;
    let s = row + start[x] * 3;
    for (let k = 0; k < count[x]; k++, s += 3) {
      const w = weights[base + k];
      r += w * src[s];
      g += w * src[s + 1];
      b += w * src[s + 2];
    }
    dst[d] = r;
    dst[d + 1] = g;
    dst[d + 2] = b;
  }
}

/**
 * Resizes `box` of a 3-channel HWC float image (row length `srcWidth`) to outHeight × outWidth,
 * clamping to [0, 255] as the 8-bit PIL pipeline would.
 */
export function resizeCropBicubic(
  src: Float32Array,
  srcWidth: number,
  box: CropBox,
  outHeight: number,
  outWidth: number,
  out: Float32Array = new Float32Array(outHeight * outWidth * 3),
): Float32Array {
  const h = resampleTaps(box.width, outWidth);
  const v = resampleTaps(box.height, outHeight);
  const rowLen = outWidth * 3;
  const tmp = new Float32Array(box.height * rowLen);
  for (let y = 0; y < box.height; y++)
    horizontalRow(src, ((box.top + y) * srcWidth + box.left) * 3, h, tmp, y * rowLen);
  // Accumulating whole rows (k outer, pixels inner) reads `tmp` sequentially; each value still
  // sums its taps in the same order, in doubles, so the result is bit-identical to a per-pixel loop.
  const acc = new Float64Array(rowLen);
  for (let y = 0; y < outHeight; y++) {
    acc.fill(0);
    const base = y * v.taps;
    const first = v.start[y];
    for (let k = 0; k < v.count[y]; k++) {
      const w = v.weights[base + k];
      const row = (first + k) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += w * tmp[row + i];
    }
    const d = y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      const a = acc[i];
      out[d + i] = a < 0 ? 0 : a > 255 ? 255 : a;
    }
  }
  return out;
}
