import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import seedrandom from 'seedrandom';
import { l2NormalizeRows, voteClasses, weightedKnn, type FeatureSet } from '../src/knn';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function clusters(
  n: number,
  dim: number,
  classes: number,
  spread: number,
  seed: string,
  shuffle = false,
): FeatureSet {
  const rng = seedrandom(seed);
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = c;
    for (let j = 0; j < dim; j++) features[i * dim + j] = (j === c ? 1 : 0) + spread * (rng() - 0.5);
  }
  if (shuffle)
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [labels[i], labels[j]] = [labels[j], labels[i]];
    }
  return { features, labels, count: n, dim };
}

describe('weighted k-NN', () => {
  it('votes with exp(sim / T) weights, as computed by hand', () => {
    // Neighbours: class 1 (sim 0.9), class 0 (0.8), class 0 (0.7); T = 0.1.
    const { scores, ranking } = voteClasses([0.9, 0.8, 0.7], [1, 0, 0], 3, 0.1, 3);
    expect(scores[1]).toBeCloseTo(Math.exp(9), 6);
    expect(scores[0]).toBeCloseTo(Math.exp(8) + Math.exp(7), 6);
    expect(scores[2]).toBe(0);
    // e^9 = 8103 > e^8 + e^7 = 4078: the single closer neighbour wins.
    expect(ranking).toEqual([1, 0, 2]);
    // With k = 1 only the nearest counts; with a high temperature the two votes for class 0 win.
    expect(voteClasses([0.9, 0.8, 0.7], [1, 0, 0], 3, 10, 3).ranking[0]).toBe(0);
  });

  it('normalises rows to unit length', () => {
    const x = l2NormalizeRows(new Float32Array([3, 4, 0, 0]), 2);
    expect(Array.from(x)).toEqual([0.6000000238418579, 0.800000011920929, 0, 0]);
  });

  it('is 100% on well-separated clusters and near chance on shuffled labels', () => {
    const train = clusters(400, 8, 8, 0.2, 'a');
    const test = clusters(160, 8, 8, 0.2, 'b');
    const scores = weightedKnn(train, test, { numClasses: 8, ks: [10, 20, 100, 200], chunkSize: 37 });
    for (const s of scores) expect(s.top1).toBe(100);
    expect(scores.map((s) => s.k)).toEqual([10, 20, 100, 200]);
    const shuffled = clusters(400, 8, 8, 0.2, 'a', true);
    const chance = weightedKnn(shuffled, test, { numClasses: 8, ks: [20] });
    expect(chance[0].top1).toBeGreaterThan(100 / 8 - 10);
    expect(chance[0].top1).toBeLessThan(100 / 8 + 12);
    expect(chance[0].top5).toBeLessThan(100);
  });

  it('gives the same scores whatever the bank is chunked into', () => {
    const train = clusters(300, 6, 6, 1.5, 'd');
    const test = clusters(90, 6, 6, 1.5, 'e');
    const whole = weightedKnn(train, test, { numClasses: 6, ks: [1, 5, 50], chunkSize: 17 });
    const chunked = weightedKnn(train, test, {
      numClasses: 6,
      ks: [1, 5, 50],
      chunkSize: 17,
      bankChunkSize: 64,
    });
    expect(chunked).toEqual(whole);
    expect(whole[0].top1).toBeLessThan(100);
  });

  it('does not leak tensors', () => {
    const train = clusters(50, 4, 4, 0.2, 'c');
    const before = tf.memory().numTensors;
    weightedKnn(train, train, { numClasses: 4, ks: [5] });
    expect(tf.memory().numTensors).toBe(before);
  });
});
