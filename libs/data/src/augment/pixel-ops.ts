/**
 * In-place operations on 3-channel HWC float images with values in [0, 255]. Each clamps
 * to that range, as torchvision's tensor ops clamp to [0, 1].
 */

const clamp255 = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : v);

/** ITU-R 601 luma, as PIL's `convert('L')` and the spec's grayscale use. */
export function luma(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}

/** Expands 8-bit pixels with 1 or 3 channels to 3-channel floats. */
export function toRgbFloat(pixels: Uint8Array, channels: number, out: Float32Array): Float32Array {
  const n = out.length / 3;
  if (channels === 3) for (let i = 0; i < n * 3; i++) out[i] = pixels[i];
  else if (channels === 1)
    for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = pixels[i];
  else throw new Error(`toRgbFloat: unsupported channel count ${channels}`);
  return out;
}

export function flipHorizontal(img: Float32Array, height: number, width: number): void {
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let l = 0, r = width - 1; l < r; l++, r--) {
      for (let c = 0; c < 3; c++) {
        const t = img[row + l * 3 + c];
        img[row + l * 3 + c] = img[row + r * 3 + c];
        img[row + r * 3 + c] = t;
      }
    }
  }
}

export function grayscale(img: Float32Array): void {
  for (let i = 0; i < img.length; i += 3)
    img[i] = img[i + 1] = img[i + 2] = luma(img[i], img[i + 1], img[i + 2]);
}

/** PIL's solarize with threshold 128: every value ≥ 128 becomes 255 − value. */
export function solarize(img: Float32Array): void {
  for (let i = 0; i < img.length; i++) if (img[i] >= 128) img[i] = 255 - img[i];
}

export function adjustBrightness(img: Float32Array, factor: number): void {
  for (let i = 0; i < img.length; i++) img[i] = clamp255(img[i] * factor);
}

/** Blends with the mean of the grayscale image (torchvision `adjust_contrast`). */
export function adjustContrast(img: Float32Array, factor: number): void {
  let sum = 0;
  for (let i = 0; i < img.length; i += 3) sum += luma(img[i], img[i + 1], img[i + 2]);
  const mean = sum / (img.length / 3);
  for (let i = 0; i < img.length; i++) img[i] = clamp255(factor * img[i] + (1 - factor) * mean);
}

/** Blends each pixel with its own gray value (torchvision `adjust_saturation`). */
export function adjustSaturation(img: Float32Array, factor: number): void {
  for (let i = 0; i < img.length; i += 3) {
    const gray = (1 - factor) * luma(img[i], img[i + 1], img[i + 2]);
    img[i] = clamp255(factor * img[i] + gray);
    img[i + 1] = clamp255(factor * img[i + 1] + gray);
    img[i + 2] = clamp255(factor * img[i + 2] + gray);
  }
}

/** Rotates hue by `shift` turns (in [−0.5, 0.5]) in HSV space (torchvision `adjust_hue`). */
export function adjustHue(img: Float32Array, shift: number): void {
  for (let i = 0; i < img.length; i += 3) {
    const r = img[i] / 255;
    const g = img[i + 1] / 255;
    const b = img[i + 2] / 255;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const chroma = max - min;
    if (chroma === 0) continue; // gray pixels have no hue to rotate
    const s = chroma / max;
    let h: number;
    if (max === r) h = (g - b) / chroma;
    else if (max === g) h = 2 + (b - r) / chroma;
    else h = 4 + (r - g) / chroma;
    h = h / 6 + shift;
    h -= Math.floor(h);
    const sector = Math.floor(h * 6);
    const f = h * 6 - sector;
    const v = max;
    const p = v * (1 - s);
    const q = v * (1 - s * f);
    const t = v * (1 - s * (1 - f));
    // Locals rather than a destructured array literal: no allocation per pixel.
    let nr: number;
    let ng: number;
    let nb: number;
    switch (sector) {
      case 1:
        nr = q;
        ng = v;
        nb = p;
        break;
      case 2:
        nr = p;
        ng = v;
        nb = t;
        break;
      case 3:
        nr = p;
        ng = q;
        nb = v;
        break;
      case 4:
        nr = t;
        ng = p;
        nb = v;
        break;
      case 5:
        nr = v;
        ng = p;
        nb = q;
        break;
      default: // 0, or 6 when h rounds up to 1
        nr = v;
        ng = t;
        nb = p;
        break;
    }
    img[i] = clamp255(nr * 255);
    img[i + 1] = clamp255(ng * 255);
    img[i + 2] = clamp255(nb * 255);
  }
}

/** /255 then (x − mean) / std per channel, written into `out` at `offset`. */
export function normalizeInto(
  img: Float32Array,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
  out: Float32Array,
  offset: number,
): void {
  const [s0, s1, s2] = [1 / (255 * std[0]), 1 / (255 * std[1]), 1 / (255 * std[2])];
  const [m0, m1, m2] = [mean[0] / std[0], mean[1] / std[1], mean[2] / std[2]];
  for (let i = 0, o = offset; i < img.length; i += 3, o += 3) {
    out[o] = img[i] * s0 - m0;
    out[o + 1] = img[i + 1] * s1 - m1;
    out[o + 2] = img[i + 2] * s2 - m2;
  }
}
