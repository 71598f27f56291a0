import { resizeCropBicubic } from '../src/augment/bicubic-resize';
import { gaussianBlur } from '../src/augment/gaussian-blur';

/**
 * The resize and blur kernels sweep whole rows and fold several taps per sweep for speed; these
 * per-pixel loops are the definition they must match bit for bit (taps in order, doubles,
 * float32 weights), including images narrower or shorter than the kernel.
 */

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** [0, 255] values with some exact zeros, where a sign-of-zero slip would show. */
function randomImage(rnd: () => number, length: number): Float32Array {
  return Float32Array.from({ length }, () => (rnd() < 0.1 ? 0 : rnd() * 255));
}

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function referenceBlur(img: Float32Array, height: number, width: number, sigma: number): Float32Array {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const raw = Array.from({ length: 2 * radius + 1 }, (_, i) =>
    Math.exp(-((i - radius) ** 2) / (2 * sigma * sigma)),
  );
  const sum = raw.reduce((a, b) => a + b, 0);
  const k = raw.map((w) => Math.fround(Math.fround(w) / sum));
  const clampTo = (v: number, n: number): number => Math.min(Math.max(v, 0), n - 1);
  const pass = (src: Float32Array, at: (y: number, x: number, t: number) => number): Float32Array => {
    const dst = new Float32Array(src.length);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < 3; c++) {
          let acc = 0;
          for (let t = -radius; t <= radius; t++) acc += k[t + radius] * src[at(y, x, t) * 3 + c];
          dst[(y * width + x) * 3 + c] = acc;
        }
    return dst;
  };
  const horizontal = pass(img, (y, x, t) => y * width + clampTo(x + t, width));
  return pass(horizontal, (y, x, t) => clampTo(y + t, height) * width + x);
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
): Float32Array {
  const h = referenceTaps(box.width, outWidth);
  const v = referenceTaps(box.height, outHeight);
  const tmp = new Float32Array(box.height * outWidth * 3);
  for (let y = 0; y < box.height; y++)
    for (let x = 0; x < outWidth; x++)
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        h[x].w.forEach((w, k) => {
          acc += w * src[((box.top + y) * srcWidth + box.left + h[x].lo + k) * 3 + c];
        });
        tmp[(y * outWidth + x) * 3 + c] = acc;
      }
  const out = new Float32Array(outHeight * outWidth * 3);
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

describe('row-sweeping kernels match their per-pixel definition bit for bit', () => {
  it('gaussian blur, from images narrower than the kernel to wider ones', () => {
    const rnd = lcg(11);
    for (let i = 0; i < 150; i++) {
      const [height, width] = [1 + Math.floor(rnd() * 30), 1 + Math.floor(rnd() * 30)];
      const sigma = 0.1 + rnd() * 2.4;
      const img = randomImage(rnd, height * width * 3);
      const expected = referenceBlur(img, height, width, sigma);
      gaussianBlur(img, height, width, sigma);
      expect({ height, width, sigma, same: bytes(img).equals(bytes(expected)) }).toEqual({
        height,
        width,
        sigma,
        same: true,
      });
    }
  });

  it('bicubic resize, shrinking and enlarging crops of any shape', () => {
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
      const same = bytes(resizeCropBicubic(src, W, box, outHeight, outWidth)).equals(
        bytes(referenceResize(src, W, box, outHeight, outWidth)),
      );
      expect({ box, outHeight, outWidth, same }).toEqual({ box, outHeight, outWidth, same: true });
    }
  });
});
