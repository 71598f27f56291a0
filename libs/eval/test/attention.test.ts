import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { disposeParams, initDinoParams, lastSelfAttention, type Params } from '@dinoq/dino';
import { clsAttention, imageAttention } from '../src/attention';
import { massMask, upsampleNearest } from '../src/masks';
import { tinyConfig } from './tiny-vit';

let params: Params;

beforeAll(async () => {
  await tf.setBackend('cpu');
  params = initDinoParams(tinyConfig, 3);
});

afterAll(() => disposeParams(params));

function images(batch: number, side: number): tf.Tensor4D {
  return tf.randomNormal([batch, side, side, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
}

describe('[CLS] attention maps', () => {
  it('are row 0 of the last block attention without the [CLS] column', () => {
    const x = images(2, 16);
    const att = clsAttention(params, tinyConfig, x);
    expect(att).toMatchObject({ batch: 2, heads: 2, gridH: 4, gridW: 4, patchSize: 4 });
    expect(att.data.length).toBe(2 * 2 * 16);
    const full = lastSelfAttention(params, x, { config: tinyConfig });
    const probs = full.arraySync();
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < 2; h++) {
        const row = probs[b][h][0];
        const ours = att.data.subarray((b * 2 + h) * 16, (b * 2 + h + 1) * 16);
        ours.forEach((v, j) => expect(v).toBeCloseTo(row[j + 1], 6));
        // Softmax over N + 1 keys: the patch weights sum to 1 minus the [CLS]→[CLS] weight.
        expect(ours.reduce((a, v) => a + v, 0)).toBeCloseTo(1 - row[0], 5);
      }
    tf.dispose([x, full]);
  });

  it('handles rectangular inputs and rejects sides that are not multiples of the patch', () => {
    const x = tf.randomNormal([1, 8, 12, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const att = clsAttention(params, tinyConfig, x);
    expect(att).toMatchObject({ gridH: 2, gridW: 3 });
    const img = imageAttention(att, 0);
    expect(img.height).toBe(8);
    expect(img.width).toBe(12);
    expect(img.meanMask.length).toBe(96);
    x.dispose();
    const bad = tf.zeros([1, 10, 12, 3]) as tf.Tensor4D;
    expect(() => clsAttention(params, tinyConfig, bad)).toThrow(/10×12.*patch size 4/);
    bad.dispose();
  });

  it('splits a batch into per-image maps, masks at image resolution and a head mean', () => {
    const x = images(3, 16);
    const before = tf.memory().numTensors;
    const att = clsAttention(params, tinyConfig, x);
    expect(tf.memory().numTensors).toBe(before);
    const img = imageAttention(att, 2, 0.6);
    expect(img.heads).toHaveLength(2);
    expect(img.heads[0].length).toBe(16);
    expect(img.headMasks[1].length).toBe(16 * 16);
    expect(img.height).toBe(16);
    const n = 16;
    const own = att.data.subarray(2 * 2 * n, 3 * 2 * n);
    expect(Array.from(img.heads[1])).toEqual(Array.from(own.subarray(n, 2 * n)));
    img.mean.forEach((v, j) => expect(v).toBeCloseTo((own[j] + own[n + j]) / 2, 7));
    expect(Array.from(img.headMasks[1])).toEqual(
      Array.from(upsampleNearest(massMask(img.heads[1], 0.6), 4, 4, 4)),
    );
    expect(Array.from(img.meanMask)).toEqual(Array.from(upsampleNearest(massMask(img.mean, 0.6), 4, 4, 4)));
    expect(() => imageAttention(att, 3)).toThrow(/image 3/);
    x.dispose();
  });
});
