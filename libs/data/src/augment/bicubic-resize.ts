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
  // Horizontal pass over the crop's rows, then vertical pass over its output.
  const tmp = new Float32Array(box.height * outWidth * 3);
  for (let y = 0; y < box.height; y++) {
    const row = ((box.top + y) * srcWidth + box.left) * 3;
    for (let x = 0; x < outWidth; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      const base = x * h.taps;
      for (let k = 0; k < h.count[x]; k++) {
        const w = h.weights[base + k];
        const s = row + (h.start[x] + k) * 3;
        r += w * src[s];
        g += w * src[s + 1];
        b += w * src[s + 2];
      }
      const d = (y * outWidth + x) * 3;
      tmp[d] = r;
      tmp[d + 1] = g;
      tmp[d + 2] = b;
    }
  }
  const rowLen = outWidth * 3;
  for (let y = 0; y < outHeight; y++) {
    const base = y * v.taps;
    const d = y * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let acc = 0;
      for (let k = 0; k < v.count[y]; k++) acc += v.weights[base + k] * tmp[(v.start[y] + k) * rowLen + i];
      out[d + i] = acc < 0 ? 0 : acc > 255 ? 255 : acc;
    }
  }
  return out;
}
