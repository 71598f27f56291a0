import { parseRunConfig, type AugmentConfig } from '@dinoq/config';
import {
  evalCropBox,
  evalCropFraction,
  evalTransform,
  REFERENCE_EVAL_CROP_FRACTION,
} from '../src/augment/eval-transform';
import { augmentBatch, multiCropViews } from '../src/augment/multi-crop';
import { ImageSourceBuilder, imageAt, uniformImages, type ImageSource } from '../src/images';

const cfg: AugmentConfig = parseRunConfig({
  model: { patchSize: 4 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 3 },
}).augment;

/** Deterministic textured 12×10 gray images. */
function grayImages(count: number, height = 12, width = 10): ImageSource {
  const images = new Uint8Array(count * height * width);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37 + ((i * i) % 11) * 23) & 0xff;
  return uniformImages({ images, count, height, width, channels: 1 });
}

function constantImages(count: number, value: number): ImageSource {
  return uniformImages({
    images: new Uint8Array(count * 8 * 8).fill(value),
    count,
    height: 8,
    width: 8,
    channels: 1,
  });
}

function rangeCheck(view: Float32Array, c = cfg): void {
  for (let i = 0; i < view.length; i++) {
    const ch = i % 3;
    expect(view[i]).toBeGreaterThanOrEqual(-c.mean[ch] / c.std[ch] - 1e-5);
    expect(view[i]).toBeLessThanOrEqual((1 - c.mean[ch]) / c.std[ch] + 1e-5);
  }
}

describe('DINO multi-crop', () => {
  it('orders views global1, global2, locals with the configured sizes', () => {
    const views = multiCropViews(cfg);
    expect(views.map((v) => [v.kind, v.size, v.blurProbability, v.solarizeProbability])).toEqual([
      ['global', 16, 1, 0],
      ['global', 16, 0.1, 0.2],
      ['local', 8, 0.5, 0],
      ['local', 8, 0.5, 0],
      ['local', 8, 0.5, 0],
    ]);
    expect(views[0].scale).toEqual([0.4, 1]);
    expect(views[2].scale).toEqual([0.05, 0.4]);
  });

  it('returns one NHWC array per view, within the normalised range', async () => {
    const out = await augmentBatch(grayImages(5), [4, 0, 2], cfg, { seed: 1, epoch: 0 });
    expect(out.batch).toBe(3);
    expect(out.sizes).toEqual([16, 16, 8, 8, 8]);
    expect(out.views.map((v) => v.length)).toEqual([
      3 * 16 * 16 * 3,
      3 * 16 * 16 * 3,
      3 * 8 * 8 * 3,
      3 * 8 * 8 * 3,
      3 * 8 * 8 * 3,
    ]);
    out.views.forEach((v) => rangeCheck(v));
    // Not constant: the crops carry the texture.
    const g1 = out.views[0];
    expect(Math.max(...g1) - Math.min(...g1)).toBeGreaterThan(1);
  });

  it('is bit-identical for the same seed and epoch, and per image whatever the batch', async () => {
    const data = grayImages(6);
    const a = await augmentBatch(data, [1, 3, 5], cfg, { seed: 7, epoch: 2 });
    const b = await augmentBatch(data, [1, 3, 5], cfg, { seed: 7, epoch: 2 });
    a.views.forEach((v, i) =>
      expect(Buffer.from(v.buffer).equals(Buffer.from(b.views[i].buffer))).toBe(true),
    );
    // Image 3 alone gets the same views it got at batch position 1.
    const alone = await augmentBatch(data, [3], cfg, { seed: 7, epoch: 2 });
    alone.views.forEach((v, i) => {
      const per = v.length;
      expect(Array.from(v)).toEqual(Array.from(a.views[i].subarray(per, 2 * per)));
    });
  });

  it('changes with the epoch and with the seed', async () => {
    const data = grayImages(4);
    const base = await augmentBatch(data, [0, 1, 2, 3], cfg, { seed: 7, epoch: 0 });
    const nextEpoch = await augmentBatch(data, [0, 1, 2, 3], cfg, { seed: 7, epoch: 1 });
    const otherSeed = await augmentBatch(data, [0, 1, 2, 3], cfg, { seed: 8, epoch: 0 });
    for (const other of [nextEpoch, otherSeed])
      other.views.forEach((v, i) =>
        expect(Buffer.from(v.buffer).equals(Buffer.from(base.views[i].buffer))).toBe(false),
      );
  });

  it('solarizes only the second global view, about 20 % of the time', async () => {
    // On a white image nothing but solarize goes below 255 × 0.6 (the lowest brightness factor):
    // contrast, saturation, hue, grayscale and blur leave a constant gray image unchanged.
    const n = 300;
    const out = await augmentBatch(
      constantImages(n, 255),
      Array.from({ length: n }, (_, i) => i),
      cfg,
      { seed: 3, epoch: 0 },
    );
    const darkViews = out.views.map((view, v) => {
      const per = out.sizes[v] * out.sizes[v] * 3;
      let dark = 0;
      for (let b = 0; b < n; b++) {
        const px = view[b * per] * cfg.std[0] + cfg.mean[0]; // back to [0, 1]
        if (px < 0.5) dark++;
        if (px >= 0.5) expect(px).toBeGreaterThanOrEqual(0.6 - 1e-4);
        else expect(px).toBeLessThanOrEqual(0.4 + 1e-4);
      }
      return dark;
    });
    expect(darkViews[0]).toBe(0);
    expect(darkViews.slice(2)).toEqual([0, 0, 0]);
    expect(darkViews[1]).toBeGreaterThan(n * 0.2 - 30);
    expect(darkViews[1]).toBeLessThan(n * 0.2 + 30);
  });

  it('expands RGB sources without touching them', async () => {
    const rgb = grayImages(2);
    const src: ImageSource = { ...rgb, images: new Uint8Array(rgb.images.length * 3), channels: 3 };
    for (let i = 0; i < rgb.images.length; i++)
      src.images.set([rgb.images[i], 255 - rgb.images[i], 128], i * 3);
    const before = Buffer.from(src.images);
    const out = await augmentBatch(src, [0, 1], cfg, { seed: 0, epoch: 0 });
    out.views.forEach((v) => rangeCheck(v));
    expect(Buffer.from(src.images).equals(before)).toBe(true);
  });

  it('rejects indices outside the dataset', async () => {
    await expect(augmentBatch(grayImages(2), [0, 2], cfg, { seed: 0, epoch: 0 })).rejects.toThrow(
      'image index 2 is outside the dataset (0..1)',
    );
  });
});

describe('eval transform', () => {
  it('resizes without augmentation and normalises', () => {
    const data = constantImages(3, 128);
    const out = evalTransform(data, [2, 0], 12, cfg.mean, cfg.std);
    expect(out).toHaveLength(2 * 12 * 12 * 3);
    for (let i = 0; i < out.length; i++)
      expect(out[i]).toBeCloseTo((128 / 255 - cfg.mean[i % 3]) / cfg.std[i % 3], 5);
  });

  it('keeps orientation and centre-crops non-square images', () => {
    // 4 rows × 6 columns, left half black, right half white; the centre 4×4 square is cols 1..4.
    const images = new Uint8Array(24);
    for (let y = 0; y < 4; y++) for (let x = 3; x < 6; x++) images[y * 6 + x] = 255;
    const out = evalTransform(
      uniformImages({ images, count: 1, height: 4, width: 6, channels: 1 }),
      [0],
      4,
      [0, 0, 0],
      [1, 1, 1],
    );
    const row = Array.from({ length: 4 }, (_, x) => out[x * 3]);
    expect(row[0]).toBe(0);
    expect(row[3]).toBe(1);
  });

  it('centre-crops each image of its own size: the reference Resize(256) + CenterCrop(224) box', () => {
    // 16 high × 48 wide: 224/256 of the shorter side is 14, centred.
    expect(evalCropBox(16, 48, REFERENCE_EVAL_CROP_FRACTION)).toEqual({
      top: 1,
      left: 17,
      height: 14,
      width: 14,
    });
    expect(evalCropBox(48, 16, 1)).toEqual({ top: 16, left: 0, height: 16, width: 16 });
    expect(() => evalCropBox(4, 4, 0)).toThrow('eval crop fraction must be in (0, 1], got 0');

    // A wide image white in its centre columns only and a tall one white in its top rows only.
    const wide = new Uint8Array(16 * 48);
    for (let y = 0; y < 16; y++) wide.fill(255, y * 48 + 16, y * 48 + 32);
    const tall = new Uint8Array(40 * 10);
    tall.fill(255, 0, 10 * 10);
    const builder = new ImageSourceBuilder(1, 2, wide.length + tall.length);
    builder.add(wide, 16, 48);
    builder.add(tall, 40, 10);
    const source = builder.finish();
    expect(evalCropFraction(source)).toBe(REFERENCE_EVAL_CROP_FRACTION);
    expect(evalCropFraction(grayImages(3))).toBe(1);

    const out = evalTransform(source, [0, 1], 8, [0, 0, 0], [1, 1, 1], REFERENCE_EVAL_CROP_FRACTION);
    const frame = 8 * 8 * 3;
    // The wide image's centre box lies inside its white band; the tall one's misses the white top.
    expect(Math.min(...out.subarray(0, frame))).toBeCloseTo(1, 5);
    expect(Math.max(...out.subarray(frame))).toBeCloseTo(0, 5);
    // Each image is transformed as if it were alone.
    for (const index of [0, 1]) {
      const { pixels, height, width } = imageAt(source, index);
      const alone = uniformImages({ images: pixels, count: 1, height, width, channels: 1 });
      const single = evalTransform(alone, [0], 8, [0, 0, 0], [1, 1, 1], REFERENCE_EVAL_CROP_FRACTION);
      expect(out.subarray(index * frame, (index + 1) * frame)).toEqual(single);
    }
  });
});
