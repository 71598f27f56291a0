import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import seedrandom from 'seedrandom';
import { evalTransform } from '@dinoq/data';
import { disposeParams, initDinoParams, intermediateLayers, type Params } from '@dinoq/dino';
import type { FeatureSet } from '../src/knn';
import { crossEntropyGradients, linearProbe, trainLinearClassifier } from '../src/linear-probe';
import { extractProbeFeatures } from '../src/probe-features';
import { randomSplit, tinyConfig } from './tiny-vit';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Gaussian blobs around ±1 class centres in `dim` dimensions: linearly separable. */
function blobs(n: number, dim: number, classes: number, seed: string, shuffleLabels = false): FeatureSet {
  // The same class centres for every set; only the noise depends on the seed.
  const centreRng = seedrandom('centres');
  const centres = Array.from({ length: classes }, () =>
    Array.from({ length: dim }, () => (centreRng() < 0.5 ? -1 : 1)),
  );
  const rng = seedrandom(seed);
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % classes;
    for (let j = 0; j < dim; j++) features[i * dim + j] = centres[labels[i]][j] + 0.3 * (rng() - 0.5);
  }
  if (shuffleLabels) for (let i = 0; i < n; i++) labels[i] = Math.floor(rng() * classes);
  return { features, labels, count: n, dim };
}

describe('crossEntropyGradients', () => {
  it('matches autodiff of the mean cross-entropy', () => {
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.5, 'float32', 2) as tf.Tensor2D);
    const b = tf.variable(tf.tensor1d([0.1, -0.2, 0.3]));
    const onehot = tf.oneHot(tf.tensor1d([0, 2, 1, 1, 0], 'int32'), 3, 1, 0, 'float32') as tf.Tensor2D;
    const ours = crossEntropyGradients(x, onehot, w, b);
    const auto = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(onehot, tf.add(tf.matMul(x, w), b)) as tf.Scalar,
      [w, b],
    );
    expect(ours.lossSum.dataSync()[0] / 5).toBeCloseTo(auto.value.dataSync()[0], 5);
    const close = (a: tf.Tensor, e: tf.Tensor) =>
      a.dataSync().forEach((v, i) => expect(v).toBeCloseTo(e.dataSync()[i], 5));
    close(ours.gradW, auto.grads[w.name]);
    close(ours.gradB, auto.grads[b.name]);
    tf.dispose([
      x,
      w,
      b,
      onehot,
      ours.lossSum,
      ours.gradW,
      ours.gradB,
      auto.value,
      ...Object.values(auto.grads),
    ]);
  });
});

describe('trainLinearClassifier', () => {
  it('reaches near-perfect accuracy on linearly separable features, one curve entry per epoch', async () => {
    const train = blobs(300, 12, 4, 'train');
    const test = blobs(100, 12, 4, 'test');
    const seen: number[] = [];
    const before = tf.memory().numTensors;
    const res = await trainLinearClassifier(train, test, {
      epochs: 8,
      lr: 0.5,
      batchSize: 32,
      onEpoch: (e) => seen.push(e.epoch),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(res.curve).toHaveLength(8);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(res.top1).toBeGreaterThanOrEqual(99);
    expect(res.top5).toBe(100);
    expect(res.numClasses).toBe(4);
    expect(res.featureDim).toBe(12);
    expect(res.curve[res.bestEpoch].top1).toBe(res.top1);
    expect(res.curve.every((e) => e.top1 <= res.top1)).toBe(true);
    expect(res.curve[7].trainLoss).toBeLessThan(res.curve[0].trainLoss);
    expect(res.finalTop1).toBe(res.curve[7].top1);
  });

  it('anneals lr·B/256 by a per-epoch cosine to 0 and starts from small random weights', async () => {
    const train = blobs(64, 6, 3, 'a');
    const res = await trainLinearClassifier(train, train, { epochs: 4, lr: 0.256, batchSize: 64 });
    const base = (0.256 * 64) / 256;
    expect(res.curve.map((e) => e.lr)).toEqual(
      [0, 1, 2, 3].map((e) => (base * (1 + Math.cos((Math.PI * e) / 4))) / 2),
    );
    // Initial loss ≈ ln(3): weights N(0, 0.01) give near-uniform predictions.
    const zeroEpochs = await trainLinearClassifier(train, train, { epochs: 1, lr: 1e-9, batchSize: 64 });
    expect(zeroEpochs.curve[0].trainLoss).toBeCloseTo(Math.log(3), 1);
  });

  it('stays near chance on shuffled labels and is deterministic for a seed', async () => {
    const train = blobs(200, 8, 4, 'b', true);
    const test = blobs(200, 8, 4, 'c', true);
    const a = await trainLinearClassifier(train, test, { epochs: 3, lr: 0.5, batchSize: 32, seed: 3 });
    const b = await trainLinearClassifier(train, test, { epochs: 3, lr: 0.5, batchSize: 32, seed: 3 });
    expect(a.curve).toEqual(b.curve);
    expect(a.finalTop1).toBeLessThan(45);
  });

  it('rejects mismatched or unlabelled sets', async () => {
    const train = blobs(10, 4, 2, 'd');
    await expect(trainLinearClassifier(train, blobs(10, 5, 2, 'e'))).rejects.toThrow(/dim 4 ≠ test dim 5/);
    const unlabelled = { ...train, labels: Int32Array.from(train.labels, () => -1) };
    await expect(trainLinearClassifier(unlabelled, train)).rejects.toThrow(/no label/);
  });
});

describe('probe features and the full probe', () => {
  let params: Params;
  beforeAll(() => {
    params = initDinoParams(tinyConfig, 9);
  });
  afterAll(() => disposeParams(params));

  it('concatenates the [CLS] of the last n blocks, or interleaves [CLS] and the patch mean', async () => {
    const split = randomSplit(3, 20, 'feat');
    const both = await extractProbeFeatures(params, split, {
      config: tinyConfig,
      lastBlocks: 2,
      batchSize: 2,
    });
    expect(both).toMatchObject({ count: 3, dim: 32 });
    const pooled = await extractProbeFeatures(params, split, {
      config: tinyConfig,
      lastBlocks: 1,
      avgPool: true,
    });
    expect(pooled.dim).toBe(32);

    const x = tf.tensor4d(
      evalTransform(split, [0, 1, 2], 16, tinyConfig.augment.mean, tinyConfig.augment.std),
      [3, 16, 16, 3],
    );
    const layers = intermediateLayers(params, x, 2, { config: tinyConfig });
    const [l0, l1] = layers.map((t) => t.arraySync());
    tf.dispose([x, ...layers]);
    for (let i = 0; i < 3; i++) {
      const row = both.features.subarray(i * 32, (i + 1) * 32);
      for (let d = 0; d < 16; d++) {
        expect(row[d]).toBeCloseTo(l0[i][0][d], 5);
        expect(row[16 + d]).toBeCloseTo(l1[i][0][d], 5);
        const mean = l1[i].slice(1).reduce((s, tok) => s + tok[d], 0) / 16;
        expect(pooled.features[i * 32 + 2 * d]).toBeCloseTo(l1[i][0][d], 5);
        expect(pooled.features[i * 32 + 2 * d + 1]).toBeCloseTo(mean, 5);
      }
    }
    await expect(extractProbeFeatures(params, split, { config: tinyConfig, avgPool: true })).rejects.toThrow(
      /avgPool needs lastBlocks = 1/,
    );
  });

  it('runs end to end on a frozen backbone', async () => {
    const train = randomSplit(12, 16, 'tr');
    const test = randomSplit(6, 16, 'te');
    const before = tf.memory().numTensors;
    const res = await linearProbe(params, tinyConfig, train, test, {
      epochs: 2,
      lastBlocks: 2,
      testLimit: 4,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(res).toMatchObject({ featureDim: 32, trainCount: 12, testCount: 4, numClasses: 3 });
    expect(res.curve).toHaveLength(2);
  });
});
