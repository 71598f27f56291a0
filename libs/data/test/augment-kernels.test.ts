import { resizeCrop, resizeCropBicubic } from '../src/augment/bicubic-resize';
import { boxBlurRadius, gaussianBlur } from '../src/augment/gaussian-blur';
import { adjustHue, normalizeInto } from '../src/augment/pixel-ops';
import { PlanarImage } from '../src/augment/wasm/planar-image';

/**
 * The WebAssembly kernels compute in float32 (f32x4); these per-pixel loops in doubles are the
 * definitions they must match to within float32 rounding, on images of any shape, including ones
 * narrower or shorter than a kernel. Before the kernels, multi-crop computed the resize and the
 * colour ops in doubles; `TOLERANCE` bounds the change that moving to float32 made on the [0, 255]
 * scale (observed: about 1.2e-4).
 */
const TOLERANCE = 1e-3;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** [0, 255] values with some exact zeros. */
function randomImage(rnd: () => number, length: number): Float32Array {
  return Float32Array.from({ length }, () => (rnd() < 0.1 ? 0 : rnd() * 255));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

function cubic(x: number): number {
  const t = Math.abs(x);
  if (t < 1) return (1.5 * t - 2.5) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * -0.5;
  return 0;
}

/** Per output index: the first source index and the float32 weights, as PIL computes them. */
function referenceTaps(inSize: number, outSize: number): { lo: number; w: number[] }[] {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 2 * filterScale;
  return Array.from({ length: outSize }, (_, o) => {
    const center = (o + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    const raw = Array.from({ length: n }, (_, k) => cubic((k + lo - center + 0.5) / filterScale));
    const sum = raw.reduce((a, b) => a + b, 0);
    return { lo, w: raw.map((w) => (sum !== 0 ? Math.fround(Math.fround(w) / sum) : Math.fround(w))) };
  });
}

function referenceResize(
  src: Float32Array,
  srcWidth: number,
  box: { top: number; left: number; height: number; width: number },
  outHeight: number,
  outWidth: number,
): Float64Array {
  const h = referenceTaps(box.width, outWidth);
  const v = referenceTaps(box.height, outHeight);
  const tmp = new Float64Array(box.height * outWidth * 3);
  for (let y = 0; y < box.height; y++)
    for (let x = 0; x < outWidth; x++)
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        h[x].w.forEach((w, k) => {
          acc += w * src[((box.top + y) * srcWidth + box.left + h[x].lo + k) * 3 + c];
        });
        tmp[(y * outWidth + x) * 3 + c] = acc;
      }
  const out = new Float64Array(outHeight * outWidth * 3);
  for (let y = 0; y < outHeight; y++)
    for (let i = 0; i < outWidth * 3; i++) {
      let acc = 0;
      v[y].w.forEach((w, k) => {
        acc += w * tmp[(v[y].lo + k) * outWidth * 3 + i];
      });
      out[y * outWidth * 3 + i] = acc < 0 ? 0 : acc > 255 ? 255 : acc;
    }
  return out;
}

/**
 * PIL's GaussianBlur from its definition: per pass and direction, the extended box of float
 * radius l + a (Gwosdek et al. 2011, eq. 7, 11 and 14 for three passes) weighs the 2l + 1 centre
 * pixels 1 / (2(l + a) + 1) and the next one on each side the remainder; edges repeat the border.
 */
function referenceBoxBlur(img: Float32Array, height: number, width: number, sigma: number): Float64Array {
  const sigma2 = (sigma * sigma) / 3;
  const l = Math.floor((Math.sqrt(12 * sigma2 + 1) - 1) / 2);
  const a = ((2 * l + 1) * (l * (l + 1) - 3 * sigma2)) / (6 * (sigma2 - (l + 1) ** 2));
  const centre = 1 / (2 * (l + a) + 1);
  const side = (1 - (2 * l + 1) * centre) / 2;
  const weight = (j: number): number => (Math.abs(j) <= l ? centre : side);
  const clampTo = (v: number, n: number): number => Math.min(Math.max(v, 0), n - 1);
  const pass = (src: Float64Array, at: (y: number, x: number, j: number) => number): Float64Array => {
    const dst = new Float64Array(src.length);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < 3; c++) {
          let acc = 0;
          for (let j = -l - 1; j <= l + 1; j++) acc += weight(j) * src[at(y, x, j) * 3 + c];
          dst[(y * width + x) * 3 + c] = acc;
        }
    return dst;
  };
  let out: Float64Array = Float64Array.from(img);
  for (let p = 0; p < 3; p++) out = pass(out, (y, x, j) => y * width + clampTo(x + j, width));
  for (let p = 0; p < 3; p++) out = pass(out, (y, x, j) => clampTo(y + j, height) * width + x);
  return out;
}

/** torchvision's adjust_hue in doubles (RGB → HSV, rotate, back), on [0, 255] values. */
function referenceHue(img: Float32Array, shift: number): Float64Array {
  const out = Float64Array.from(img);
  for (let i = 0; i < img.length; i += 3) {
    const [r, g, b] = [img[i] / 255, img[i + 1] / 255, img[i + 2] / 255];
    const max = Math.max(r, g, b);
    const chroma = max - Math.min(r, g, b);
    if (chroma === 0) continue;
    let h = max === r ? (g - b) / chroma : max === g ? 2 + (b - r) / chroma : 4 + (r - g) / chroma;
    h = h / 6 + shift;
    h -= Math.floor(h);
    const sector = Math.floor(h * 6) % 6;
    const f = h * 6 - Math.floor(h * 6);
    const [v, p, q, t] = [max, max - chroma, max - chroma * f, max - chroma * (1 - f)];
    const rgb = [
      [v, t, p],
      [q, v, p],
      [p, v, t],
      [p, q, v],
      [t, p, v],
      [v, p, q],
    ][sector];
    for (let c = 0; c < 3; c++) out[i + c] = Math.min(255, Math.max(0, rgb[c] * 255));
  }
  return out;
}

describe('WebAssembly kernels match their per-pixel definitions', () => {
  it('bicubic resize, shrinking and enlarging crops of any shape, flipped or not', () => {
    const rnd = lcg(12);
    for (let i = 0; i < 150; i++) {
      const [H, W] = [1 + Math.floor(rnd() * 50), 1 + Math.floor(rnd() * 50)];
      const src = randomImage(rnd, H * W * 3);
      const [height, width] = [1 + Math.floor(rnd() * H), 1 + Math.floor(rnd() * W)];
      const box = {
        top: Math.floor(rnd() * (H - height + 1)),
        left: Math.floor(rnd() * (W - width + 1)),
        height,
        width,
      };
      const [outHeight, outWidth] = [1 + Math.floor(rnd() * 60), 1 + Math.floor(rnd() * 60)];
      const expected = referenceResize(src, W, box, outHeight, outWidth);
      const diff = maxAbsDiff(resizeCropBicubic(src, W, box, outHeight, outWidth), expected);
      expect({ box, outHeight, outWidth, close: diff <= TOLERANCE }).toEqual({
        box,
        outHeight,
        outWidth,
        close: true,
      });
      const flipped = resizeCrop(src, W, box, outHeight, outWidth, true).toInterleaved();
      const mirrored = new Float64Array(expected.length);
      for (let y = 0; y < outHeight; y++)
        for (let x = 0; x < outWidth; x++)
          for (let c = 0; c < 3; c++)
            mirrored[(y * outWidth + x) * 3 + c] = expected[(y * outWidth + outWidth - 1 - x) * 3 + c];
      expect(maxAbsDiff(flipped, mirrored)).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it("gaussian blur is PIL's three extended box passes, from images narrower than the box to wider ones", () => {
    const rnd = lcg(11);
    for (let i = 0; i < 150; i++) {
      const [height, width] = [1 + Math.floor(rnd() * 30), 1 + Math.floor(rnd() * 30)];
      const sigma = 0.1 + rnd() * 4.9; // past DINO's 2.0, so boxes wider than 3 pixels are covered
      const pixels = randomImage(rnd, height * width * 3);
      const img = PlanarImage.fromInterleaved(pixels, height, width);
      gaussianBlur(img, sigma);
      const diff = maxAbsDiff(img.toInterleaved(), referenceBoxBlur(pixels, height, width, sigma));
      expect({ height, width, sigma, close: diff <= TOLERANCE }).toEqual({
        height,
        width,
        sigma,
        close: true,
      });
    }
  });

  it('gaussian blur of an impulse has the variance σ² along each axis (what the box radius is chosen for)', () => {
    const n = 41;
    for (const sigma of [0.1, 0.5, 1, 1.5, 2, 3.7]) {
      const pixels = new Float32Array(n * n * 3);
      pixels[(20 * n + 20) * 3 + 1] = 1000;
      const img = PlanarImage.fromInterleaved(pixels, n, n);
      gaussianBlur(img, sigma);
      const out = img.toInterleaved();
      let [mass, varX, varY] = [0, 0, 0];
      for (let y = 0; y < n; y++)
        for (let x = 0; x < n; x++) {
          const v = out[(y * n + x) * 3 + 1];
          mass += v;
          varX += v * (x - 20) ** 2;
          varY += v * (y - 20) ** 2;
        }
      expect(mass).toBeCloseTo(1000, 1);
      expect(varX / mass).toBeCloseTo(sigma * sigma, 3);
      expect(varY / mass).toBeCloseTo(sigma * sigma, 3);
    }
    // The radii of three passes (Pillow's _gaussian_blur_radius), worked by hand: σ = 2 gives
    // σ²/3 = 4/3, l = floor((√17 − 1) / 2) = 1, a = 3 · (2 − 4) / (6 · (4/3 − 4)) = 0.375; σ = 1
    // gives σ²/3 = 1/3, l = 0, a = (0 − 1) / (6 · (1/3 − 1)) = 0.25.
    expect(boxBlurRadius(2)).toBeCloseTo(1.375, 6);
    expect(boxBlurRadius(1)).toBeCloseTo(0.25, 6);
  });

  it('hue rotation, for every sector and both directions', () => {
    const rnd = lcg(14);
    for (let i = 0; i < 40; i++) {
      const [height, width] = [1 + Math.floor(rnd() * 9), 1 + Math.floor(rnd() * 20)];
      const pixels = randomImage(rnd, height * width * 3);
      const shift = rnd() - 0.5;
      const img = PlanarImage.fromInterleaved(pixels, height, width);
      adjustHue(img, shift);
      expect(maxAbsDiff(img.toInterleaved(), referenceHue(pixels, shift))).toBeLessThanOrEqual(TOLERANCE);
    }
  });

  it('normalisation, writing only its own range of the output', () => {
    const rnd = lcg(15);
    const [mean, std] = [[0.485, 0.456, 0.406] as const, [0.229, 0.224, 0.225] as const];
    for (const pixels of [1, 2, 3, 4, 5, 77]) {
      const img = randomImage(rnd, pixels * 3);
      const out = new Float32Array(img.length + 20).fill(-7);
      normalizeInto(img, mean, std, out, 9);
      const expected = Array.from(out, (_, i) => {
        const j = i - 9;
        return j < 0 || j >= img.length ? -7 : (img[j] / 255 - mean[j % 3]) / std[j % 3];
      });
      expect(maxAbsDiff(out, expected)).toBeLessThanOrEqual(1e-6);
    }
  });

  it('refuses an image handle that a newer image replaced', () => {
    const first = PlanarImage.fromInterleaved(new Float32Array(12), 2, 2);
    PlanarImage.fromInterleaved(new Float32Array(12), 2, 2);
    expect(() => gaussianBlur(first, 1)).toThrow(/newer image/);
  });
});
