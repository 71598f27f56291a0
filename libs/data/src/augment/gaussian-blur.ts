import { accumulateTaps, Scratch } from './weighted-rows';

/**
 * Normalised 1-D Gaussian taps out to 3σ (at least one tap each side), rounded to float32 (the
 * precision the kernel has always had) and held as doubles so the inner loops skip the conversion.
 */
function gaussianKernel(sigma: number): Float64Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + radius] = Math.fround(w);
    sum += w; // the unrounded value, as the sum has always been taken
  }
  for (let i = 0; i < k.length; i++) k[i] = Math.fround(k[i] / sum);
  return k;
}

// Reused across calls (one call at a time per thread); grown on demand, never shrunk.
const scratchTmp = new Scratch((n) => new Float32Array(n));
const scratchAcc = new Scratch((n) => new Float64Array(n));
const scratchOffsets = new Scratch((n) => new Int32Array(n));

/**
 * Exact separable Gaussian blur of a 3-channel HWC float image, in place. Edges repeat the
 * border pixel, as PIL's blur does. (PIL approximates the Gaussian with box blurs; the spec
 * accepts the exact kernel.)
 */
export function gaussianBlur(img: Float32Array, height: number, width: number, sigma: number): void {
  const k = gaussianKernel(sigma);
  const tmp = scratchTmp.get(img.length);
  const acc = scratchAcc.get(width * 3);
  const offsets = scratchOffsets.get(k.length);
  for (let y = 0; y < height; y++) blurRow(img, tmp, y * width * 3, width, k, offsets, acc);
  blurColumns(tmp, img, height, width, k, offsets, acc);
}

/**
 * Horizontal pass of one row; taps are summed left to right, clamped at the edges. Pixels whose
 * taps all fall inside the row go through `accumulateTaps`, the few near the edges one at a time.
 */
function blurRow(
  src: Float32Array,
  dst: Float32Array,
  row: number,
  width: number,
  k: Float64Array,
  offsets: Int32Array,
  acc: Float64Array,
): void {
  const radius = (k.length - 1) / 2;
  const innerEnd = Math.max(radius, width - radius);
  const innerLen = (innerEnd - radius) * 3;
  if (innerLen > 0) {
    // Output element row + radius·3 + i takes tap t from src[row + t·3 + i].
    for (let t = 0; t < k.length; t++) offsets[t] = row + t * 3;
    accumulateTaps(src, offsets, k, 0, k.length, acc, innerLen);
    dst.set(acc.subarray(0, innerLen), row + radius * 3);
  }
  for (let x = 0; x < Math.min(radius, width); x++) blurPixel(src, dst, row, width, x, k);
  for (let x = innerEnd; x < width; x++) blurPixel(src, dst, row, width, x, k);
}

function blurPixel(
  src: Float32Array,
  dst: Float32Array,
  row: number,
  width: number,
  x: number,
  k: Float64Array,
): void {
  const radius = (k.length - 1) / 2;
  let r = 0;
  let g = 0;
  let b = 0;
  for (let t = -radius; t <= radius; t++) {
    const xx = x + t < 0 ? 0 : x + t >= width ? width - 1 : x + t;
    const s = row + xx * 3;
    const w = k[t + radius];
    r += w * src[s];
    g += w * src[s + 1];
    b += w * src[s + 2];
  }
  const d = row + x * 3;
  dst[d] = r;
  dst[d + 1] = g;
  dst[d + 2] = b;
}

/** Vertical pass, a whole output row at a time; each value sums its taps top to bottom. */
function blurColumns(
  src: Float32Array,
  dst: Float32Array,
  height: number,
  width: number,
  k: Float64Array,
  offsets: Int32Array,
  acc: Float64Array,
): void {
  const radius = (k.length - 1) / 2;
  const rowLen = width * 3;
  for (let y = 0; y < height; y++) {
    for (let t = -radius; t <= radius; t++) {
      const yy = y + t < 0 ? 0 : y + t >= height ? height - 1 : y + t;
      offsets[t + radius] = yy * rowLen;
    }
    accumulateTaps(src, offsets, k, 0, k.length, acc, rowLen);
    dst.set(acc.subarray(0, rowLen), y * rowLen);
  }
}
