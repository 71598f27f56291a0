import { resizeCrop, resizeCropBicubic } from '../src/augment/bicubic-resize';
import { colorJitter } from '../src/augment/color-jitter';
import { gaussianBlur } from '../src/augment/gaussian-blur';
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  grayscale,
  solarize,
} from '../src/augment/pixel-ops';
import { sampleCropBox } from '../src/augment/random-resized-crop';
import { augmentRng } from '../src/augment/rng';
import { PlanarImage } from '../src/augment/wasm/planar-image';

/** A one-row image of the given RGB values. */
const rgb = (...px: number[]) => PlanarImage.fromInterleaved(Float32Array.from(px), 1, px.length / 3);
const close = (a: ArrayLike<number>, b: number[], digits = 3) =>
  b.forEach((v, i) => expect(a[i]).toBeCloseTo(v, digits));

describe('bicubic resize', () => {
  // 10 × 12 test image; reference values from Pillow 9.4 `Image.resize(..., BICUBIC)` in float ("F") mode.
  const W = 10;
  const H = 12;
  const gray = Array.from({ length: W * H }, (_, i) => {
    const y = Math.floor(i / W);
    const x = i % W;
    return (y * 37 + x * 11 + ((x * y) % 7) * 19) % 256;
  });
  const src = Float32Array.from(gray.flatMap((v) => [v, v, v]));

  it('matches PIL when enlarging a crop (PIL: crop((2, 1, 7, 8)).resize((6, 9)))', () => {
    const out = resizeCropBicubic(src, W, { top: 1, left: 2, height: 7, width: 5 }, 9, 6);
    const pil = [
      92.3755, 113.6764, 143.3257, 170.5183, 195.4887, 217.2221, 140.6518, 186.2729, 157.4003, 149.3582,
      199.0941, 229.4618, 212.3761, 220.3542, 198.7914, 182.4372, 207.1113, 259.4365, 249.046, 161.2293,
      214.9492, 225.0947, 167.7845, 214.2126, 195.2383, 42.9847, 150.1765, 180.2228, 39.2061, 13.302, 26.9693,
      175.0091, 162.8656, 86.1042, 46.6034, 22.8369, 40.5113, 140.1844, 111.3952, 59.7334, 55.138, 42.393,
      70.409, 54.4926, 54.9574, 59.5425, 58.4517, 58.0517, 21.8152, 30.7021, 41.0952, 51.0113, 61.4044,
      70.2913,
    ];
    close(
      Array.from({ length: pil.length }, (_, i) => out[i * 3]),
      pil.map((v) => Math.min(255, v)), // the 8-bit pipeline clamps overshoot
    );
  });

  it('matches PIL when shrinking (antialiased, PIL: resize((4, 3)))', () => {
    const out = resizeCropBicubic(src, W, { top: 0, left: 0, height: H, width: W }, 3, 4);
    const pil = [
      101.2823, 146.2778, 158.9048, 128.1917, 108.8414, 109.5918, 90.9134, 104.7118, 124.9449, 159.4129,
      140.992, 126.5135,
    ];
    close(
      Array.from({ length: pil.length }, (_, i) => out[i * 3 + 1]),
      pil,
    );
  });

  it('is the identity at the same size', () => {
    const out = resizeCropBicubic(src, W, { top: 0, left: 0, height: H, width: W }, H, W);
    close(out, Array.from(src), 4);
  });
});

describe('random resized crop box', () => {
  it('stays inside the image with area and aspect in range', () => {
    for (let i = 0; i < 500; i++) {
      const box = sampleCropBox(augmentRng(0, 0, i), 28, 28, [0.05, 0.4]);
      expect(box.top).toBeGreaterThanOrEqual(0);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top + box.height).toBeLessThanOrEqual(28);
      expect(box.left + box.width).toBeLessThanOrEqual(28);
      const area = (box.width * box.height) / (28 * 28);
      expect(area).toBeGreaterThan(0.02); // rounding of small crops widens the range a little
      expect(area).toBeLessThan(0.5);
    }
  });

  it('falls back to a centre crop clamped to the aspect range', () => {
    // No 10-px-high crop of a 10 × 100 image can have aspect ≤ 4/3 and a third of the area.
    const box = sampleCropBox(augmentRng(0, 0, 0), 10, 100, [0.9, 1]);
    expect(box).toEqual({ top: 0, left: 43, height: 10, width: 13 });
  });
});

describe('pixel operations', () => {
  it('flips rows as part of the resize', () => {
    const src = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const img = resizeCrop(src, 3, { top: 0, left: 0, height: 1, width: 3 }, 1, 3, true);
    expect(Array.from(img.toInterleaved())).toEqual([7, 8, 9, 4, 5, 6, 1, 2, 3]);
  });

  it('grayscale uses 0.299 / 0.587 / 0.114 luma', () => {
    const img = rgb(255, 0, 0, 0, 255, 0);
    grayscale(img);
    close(img.toInterleaved(), [76.245, 76.245, 76.245, 149.685, 149.685, 149.685]);
  });

  it('solarizes values at or above 128', () => {
    const img = rgb(127, 128, 255);
    solarize(img);
    expect(Array.from(img.toInterleaved())).toEqual([127, 127, 0]);
  });

  it('brightness scales and clamps', () => {
    const img = rgb(100, 200, 250);
    adjustBrightness(img, 1.2);
    close(img.toInterleaved(), [120, 240, 255]);
  });

  it('contrast blends with the mean gray level of the whole image', () => {
    const img = rgb(0, 0, 0, 200, 200, 200);
    adjustContrast(img, 0.5);
    close(img.toInterleaved(), [50, 50, 50, 150, 150, 150]);
  });

  it('saturation 0 gives the gray image, 1 leaves it unchanged', () => {
    const img = rgb(200, 100, 50);
    adjustSaturation(img, 1);
    close(img.toInterleaved(), [200, 100, 50]);
    adjustSaturation(img, 0);
    const l = 0.299 * 200 + 0.587 * 100 + 0.114 * 50;
    close(img.toInterleaved(), [l, l, l]);
  });

  it('hue rotates in HSV: a third of a turn takes red to green', () => {
    const img = rgb(255, 0, 0, 128, 128, 128, 255, 128, 0);
    adjustHue(img, 1 / 3);
    close(img.toInterleaved(), [0, 255, 0, 128, 128, 128, 0, 255, 128], 2);
    adjustHue(img, -1 / 3);
    close(img.toInterleaved(), [255, 0, 0, 128, 128, 128, 255, 128, 0], 2);
  });

  it('colour jitter leaves a gray image gray and keeps values in range', () => {
    const img = PlanarImage.fromInterleaved(new Float32Array(4 * 3).fill(100), 1, 4);
    colorJitter(img, augmentRng(1, 0, 0));
    const out = img.toInterleaved();
    expect(new Set(Array.from(out)).size).toBe(1);
    expect(out[0]).toBeGreaterThanOrEqual(60 - 1e-3);
    expect(out[0]).toBeLessThanOrEqual(140 + 1e-3);
  });

  it('gaussian blur keeps constant images, spreads an impulse symmetrically and keeps its mass', () => {
    const flat = PlanarImage.fromInterleaved(new Float32Array(5 * 5 * 3).fill(77), 5, 5);
    gaussianBlur(flat, 1.5);
    close(flat.toInterleaved(), new Array(75).fill(77), 4);

    const n = 15;
    const pixels = new Float32Array(n * n * 3);
    pixels[(7 * n + 7) * 3] = 1000;
    const img = PlanarImage.fromInterleaved(pixels, n, n);
    gaussianBlur(img, 1);
    const out = img.toInterleaved();
    let sum = 0;
    for (let i = 0; i < out.length; i += 3) sum += out[i];
    expect(sum).toBeCloseTo(1000, 2);
    expect(out[(7 * n + 6) * 3]).toBeCloseTo(out[(7 * n + 8) * 3], 4);
    expect(out[(6 * n + 7) * 3]).toBeCloseTo(out[(7 * n + 6) * 3], 4);
    expect(out[(7 * n + 7) * 3]).toBeGreaterThan(out[(7 * n + 6) * 3]);
  });
});
