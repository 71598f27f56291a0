import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  evalTransform,
  ImageSourceBuilder,
  REFERENCE_EVAL_CROP_FRACTION,
  type DecodedSplit,
} from '@dinoq/data';
import { disposeParams, initDinoParams, vitForward, type Params } from '@dinoq/dino';
import { extractFeatures, rawPixelFeatures } from '../src/features';
import { randomSplit, tinyConfig } from './tiny-vit';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Three RGB images of their own sizes and aspects: wide, tall, square. */
function ownSizeSplit(): DecodedSplit {
  const sizes = [
    [40, 24],
    [18, 30],
    [20, 20],
  ];
  const builder = new ImageSourceBuilder(
    3,
    3,
    sizes.reduce((s, [w, h]) => s + w * h * 3, 0),
  );
  sizes.forEach(([w, h], i) =>
    builder.add(
      Uint8Array.from({ length: w * h * 3 }, (_, k) => (k * 17 + i * 83) & 0xff),
      h,
      w,
    ),
  );
  return { ...builder.finish(), labels: Int32Array.from([0, 1, 2]), skipped: 0, skippedKeys: [] };
}

/** The backbone's [CLS] features of the given model inputs. */
function forward(params: Params, pixels: Float32Array, count: number): Float32Array {
  const size = tinyConfig.augment.globalCropSize;
  const x = tf.tensor4d(pixels, [count, size, size, 3]);
  const out = vitForward(params, x, { config: tinyConfig, training: false });
  const values = out.dataSync() as Float32Array;
  tf.dispose([x, out]);
  return values;
}

describe('feature extraction', () => {
  let params: Params;
  beforeAll(() => {
    params = initDinoParams(tinyConfig, 4);
  });
  afterAll(() => disposeParams(params));

  it("resizes each image's shorter side and centre-crops it, as the reference, when images keep their own sizes", async () => {
    const split = ownSizeSplit();
    const { mean, std } = tinyConfig.augment;
    const features = await extractFeatures(params, split, { config: tinyConfig, batchSize: 2 });
    expect(features).toMatchObject({ count: 3, dim: 16 });
    const reference = evalTransform(split, [0, 1, 2], 16, mean, std, REFERENCE_EVAL_CROP_FRACTION);
    const expected = forward(params, reference, 3);
    features.features.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    // The whole centred square would give other features.
    const whole = forward(params, evalTransform(split, [0, 1, 2], 16, mean, std), 3);
    expect(whole.some((v, i) => Math.abs(v - expected[i]) > 1e-3)).toBe(true);
    expect(() => rawPixelFeatures(split)).toThrow(
      'raw-pixel features needs images of one size; these images keep their own sizes',
    );
  });

  it('keeps the whole centred square of a fixed-size split', async () => {
    const split = randomSplit(2, 20, 'fixed', 3);
    const features = await extractFeatures(params, split, { config: tinyConfig });
    const { mean, std } = tinyConfig.augment;
    const expected = forward(params, evalTransform(split, [0, 1], 16, mean, std), 2);
    features.features.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
    expect(rawPixelFeatures(split).dim).toBe(20 * 20 * 3);
  });
});
