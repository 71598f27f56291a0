/** Normalised 1-D Gaussian taps out to 3σ (at least one tap each side). */
function gaussianKernel(sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + radius] = w;
    sum += w;
  }
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/**
 * Exact separable Gaussian blur of a 3-channel HWC float image, in place. Edges repeat the
 * border pixel, as PIL's blur does. (PIL approximates the Gaussian with box blurs; the spec
 * accepts the exact kernel.)
 */
export function gaussianBlur(img: Float32Array, height: number, width: number, sigma: number): void {
  const k = gaussianKernel(sigma);
  const tmp = new Float32Array(img.length);
  for (let y = 0; y < height; y++) blurRow(img, tmp, y * width * 3, width, k);
  blurColumns(tmp, img, height, width, k);
}

/** Horizontal pass of one row; taps are summed left to right, clamped at the edges. */
function blurRow(src: Float32Array, dst: Float32Array, row: number, width: number, k: Float32Array): void {
  const radius = (k.length - 1) / 2;
  for (let x = 0; x < width; x++) {
    let r = 0;
    let g = 0;
    let b = 0;
    const inside = x - radius >= 0 && x + radius < width;
    for (let t = -radius; t <= radius; t++) {
      const xx = inside ? x + t : x + t < 0 ? 0 : x + t >= width ? width - 1 : x + t;
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
}

/**
 * Vertical pass, a whole output row at a time so that rows are read sequentially; each value
 * still sums its taps top to bottom in doubles, as a per-pixel loop would.
 */
function blurColumns(
  src: Float32Array,
  dst: Float32Array,
  height: number,
  width: number,
  k: Float32Array,
): void {
  const radius = (k.length - 1) / 2;
  const rowLen = width * 3;
  const acc = new Float64Array(rowLen);
  for (let y = 0; y < height; y++) {
    acc.fill(0);
    for (let t = -radius; t <= radius; t++) {
      const yy = y + t < 0 ? 0 : y + t >= height ? height - 1 : y + t;
      const w = k[t + radius];
      const row = yy * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i] += w * src[row + i];
    }
    dst.set(acc, y * rowLen);
  }
}
