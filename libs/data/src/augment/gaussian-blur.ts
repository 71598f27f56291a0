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
  const radius = (k.length - 1) / 2;
  const tmp = new Float32Array(img.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let t = -radius; t <= radius; t++) {
        const xx = x + t < 0 ? 0 : x + t >= width ? width - 1 : x + t;
        const s = (y * width + xx) * 3;
        const w = k[t + radius];
        r += w * img[s];
        g += w * img[s + 1];
        b += w * img[s + 2];
      }
      const d = (y * width + x) * 3;
      tmp[d] = r;
      tmp[d + 1] = g;
      tmp[d + 2] = b;
    }
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let t = -radius; t <= radius; t++) {
        const yy = y + t < 0 ? 0 : y + t >= height ? height - 1 : y + t;
        const s = (yy * width + x) * 3;
        const w = k[t + radius];
        r += w * tmp[s];
        g += w * tmp[s + 1];
        b += w * tmp[s + 2];
      }
      const d = (y * width + x) * 3;
      img[d] = r;
      img[d + 1] = g;
      img[d + 2] = b;
    }
  }
}
