import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { evalTransform, uniformImages } from '@dinoq/data';
import { disposeParams, initDinoParams, type Params } from '@dinoq/dino';
import { clsAttention, imageAttention } from '../src/attention';
import { jaccard } from '../src/jaccard';
import {
  centredBoxMask,
  centredBoxScore,
  foregroundMasks,
  maskToEvalSize,
  segmentationScores,
  type SegmentationSplit,
} from '../src/segmentation';
import { randomSplit, tinyConfig } from './tiny-vit';

describe('jaccard', () => {
  it('is intersection over union of the nonzero pixels', () => {
    expect(jaccard([1, 1, 0, 0], [1, 0, 1, 0])).toBeCloseTo(1 / 3, 12);
    expect(jaccard([255, 0], [1, 0])).toBe(1);
    expect(jaccard([1, 0], [0, 1])).toBe(0);
    expect(jaccard([0, 0], [0, 0])).toBe(1);
    expect(() => jaccard([1], [1, 0])).toThrow(/1 vs 2/);
  });
});

describe('ground truth and the centred-box baseline', () => {
  it('marks pixels above the threshold as foreground, in any channel', () => {
    const split = uniformImages({
      images: Uint8Array.from([0, 10, 11, 200]),
      count: 1,
      width: 2,
      height: 2,
      channels: 1,
    });
    expect(Array.from(foregroundMasks(split))).toEqual([0, 0, 1, 1]);
    expect(Array.from(foregroundMasks(split, 0))).toEqual([0, 1, 1, 1]);
    const rgb = uniformImages({
      images: Uint8Array.from([0, 0, 50, 3, 3, 3]),
      count: 1,
      width: 2,
      height: 1,
      channels: 3,
    });
    expect(Array.from(foregroundMasks(rgb))).toEqual([1, 0]);
  });

  it('maps masks like evalTransform maps images: centred square, nearest neighbour', () => {
    // 4 wide × 2 high: the centred 2×2 square is columns 1–2.
    const mask = Uint8Array.from([0, 1, 0, 0, 0, 0, 1, 1]);
    expect(Array.from(maskToEvalSize(mask, 4, 2, 2))).toEqual([1, 0, 0, 1]);
    expect(Array.from(maskToEvalSize(mask, 4, 2, 4))).toEqual([
      1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1,
    ]);
    // 28 → 16 keeps a centred object centred.
    const square = new Uint8Array(28 * 28);
    for (let y = 7; y < 21; y++) square.fill(1, y * 28 + 7, y * 28 + 21);
    const small = maskToEvalSize(square, 28, 28, 16);
    expect(small.reduce((a, b) => a + b, 0)).toBe(8 * 8);
    expect(small[4 * 16 + 4]).toBe(1);
    expect(small[3 * 16 + 3]).toBe(0);
  });

  it('builds a centred square of the requested area and scores it', () => {
    const box = centredBoxMask(16, 0.25);
    expect(box.reduce((a, b) => a + b, 0)).toBe(64);
    expect(box[4 * 16 + 4]).toBe(1);
    expect(box[4 * 16 + 12]).toBe(0);
    expect(centredBoxMask(16, 0).reduce((a, b) => a + b, 0)).toBe(0);
    expect(centredBoxMask(16, 2).reduce((a, b) => a + b, 0)).toBe(256);
    // Truth: the same centred square in one image, the top-left quarter in the other.
    const corner = new Uint8Array(256);
    for (let y = 0; y < 8; y++) corner.fill(1, y * 16, y * 16 + 8);
    const score = centredBoxScore([box, corner], 16);
    expect(score.areaFraction).toBe(0.25);
    expect(score.side).toBe(8);
    // Box (4..11)² vs corner (0..7)²: overlap 4×4 = 16, union 128 − 16 = 112.
    expect(score.jaccard).toBeCloseTo((1 + 16 / 112) / 2, 12);
  });
});

describe('segmentationScores', () => {
  let params: Params;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    params = initDinoParams(tinyConfig, 11);
  });
  afterAll(() => disposeParams(params));

  it('averages per-head and mean-map Jaccard over the split, as recomputed by hand', async () => {
    const split: SegmentationSplit = randomSplit(5, 24, 'seg');
    // Ground truth: an off-centre blob, different per image.
    split.masks = new Uint8Array(5 * 24 * 24);
    for (let i = 0; i < 5; i++)
      for (let y = 2 + i; y < 12 + i; y++)
        split.masks.fill(255, i * 576 + y * 24 + 3 * i, i * 576 + y * 24 + 3 * i + 9);
    const before = tf.memory().numTensors;
    const scores = await segmentationScores(params, tinyConfig, split, { batchSize: 2, limit: 4 });
    expect(tf.memory().numTensors).toBe(before);
    expect(scores.count).toBe(4);
    expect(scores.imageSize).toBe(16);
    expect(scores.heads).toHaveLength(2);

    const x = tf.tensor4d(
      evalTransform(split, [0, 1, 2, 3], 16, tinyConfig.augment.mean, tinyConfig.augment.std),
      [4, 16, 16, 3],
    );
    const att = clsAttention(params, tinyConfig, x);
    x.dispose();
    const expected = [0, 0];
    let expectedMean = 0;
    for (let i = 0; i < 4; i++) {
      const truth = maskToEvalSize(split.masks.subarray(i * 576, (i + 1) * 576), 24, 24, 16);
      const maps = imageAttention(att, i, 0.6);
      maps.headMasks.forEach((m, h) => (expected[h] += jaccard(m, truth) / 4));
      expectedMean += jaccard(maps.meanMask, truth) / 4;
    }
    scores.heads.forEach((s, h) => expect(s).toBeCloseTo(expected[h], 12));
    expect(scores.mean).toBeCloseTo(expectedMean, 12);
    const best = expected[0] >= expected[1] ? 0 : 1;
    expect(scores.bestHead).toEqual({ head: best, jaccard: scores.heads[best] });
    for (const v of [...scores.heads, scores.mean, scores.centredBox.jaccard]) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(scores.maskArea.mean).toBeGreaterThan(0);
    expect(scores.foregroundFraction).toBe(scores.centredBox.areaFraction);
  });

  it('derives ground truth from the pixels when the split has no masks', async () => {
    const split = randomSplit(2, 16, 'plain');
    // Black background with a bright centred square, as in plain Fashion-MNIST.
    split.images.fill(0);
    for (let i = 0; i < 2; i++)
      for (let y = 4; y < 12; y++) split.images.fill(200, i * 256 + y * 16 + 4, i * 256 + y * 16 + 12);
    const scores = await segmentationScores(params, tinyConfig, split);
    expect(scores.foregroundFraction).toBe(0.25);
    // The centred box is exactly the object here.
    expect(scores.centredBox.jaccard).toBe(1);
    await expect(segmentationScores(params, tinyConfig, { ...split, count: 0 })).rejects.toThrow(/no images/);
  });
});
