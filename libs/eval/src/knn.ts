import * as tf from '@tensorflow/tfjs-core';

/** Weighted k-NN classifier of the reference evaluation (spec §11). */

export interface FeatureSet {
  /** Row-major [count, dim]; need not be normalised (weightedKnn normalises a copy). */
  features: Float32Array;
  labels: Int32Array;
  count: number;
  dim: number;
}

export interface KnnOptions {
  ks?: number[];
  /** Temperature of the exp(sim / T) vote weights. */
  temperature?: number;
  numClasses: number;
  /** Test rows per similarity matrix. */
  chunkSize?: number;
  /** Train rows per similarity matrix; with chunkSize it bounds the matrix at chunk × bankChunk floats. */
  bankChunkSize?: number;
}

export interface KnnScore {
  k: number;
  top1: number;
  top5: number;
}

export const defaultKs = [10, 20, 100, 200];

/** L2-normalises each row (eps guards all-zero rows, as F.normalize does). */
export function l2NormalizeRows(x: Float32Array, dim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[r * dim + j] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let j = 0; j < dim; j++) out[r * dim + j] = x[r * dim + j] * inv;
  }
  return out;
}

/**
 * Class scores Σ exp(sim_j / T)·[label_j = c] over the first k neighbours (neighbours sorted by
 * decreasing similarity). Returned classes are ordered by decreasing score, ties by class index.
 */
export function voteClasses(
  sims: ArrayLike<number>,
  neighbourLabels: ArrayLike<number>,
  k: number,
  temperature: number,
  numClasses: number,
): { scores: Float64Array; ranking: number[] } {
  const scores = new Float64Array(numClasses);
  const n = Math.min(k, sims.length);
  for (let j = 0; j < n; j++) scores[neighbourLabels[j]] += Math.exp(sims[j] / temperature);
  const ranking = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  return { scores, ranking };
}

/** Top-1 / top-5 accuracy (in %) of the weighted k-NN classifier for each k. */
export function weightedKnn(train: FeatureSet, test: FeatureSet, opts: KnnOptions): KnnScore[] {
  if (train.dim !== test.dim) throw new Error(`k-NN: train dim ${train.dim} ≠ test dim ${test.dim}`);
  if (train.count === 0 || test.count === 0) throw new Error('k-NN: empty train or test set');
  const requested = opts.ks ?? defaultKs;
  // A k larger than the memory bank votes with every train image.
  const ks = requested.map((k) => Math.min(k, train.count));
  const temperature = opts.temperature ?? 0.07;
  const kMax = Math.max(...ks);
  // The reference splits the test set into 100 chunks; guard tiny sets (spec §11).
  const chunkSize = opts.chunkSize ?? Math.max(1, Math.min(1000, Math.floor(test.count / 100) || 1));
  const hits1 = new Float64Array(ks.length);
  const hits5 = new Float64Array(ks.length);
  const bankChunk = Math.max(kMax, opts.bankChunkSize ?? 16384);
  const bankNormed = l2NormalizeRows(train.features, train.dim);
  // Transposed once per bank chunk: the right operand of every similarity product.
  const bankChunks: { offset: number; t: tf.Tensor2D }[] = [];
  for (let offset = 0; offset < train.count; offset += bankChunk) {
    const n = Math.min(bankChunk, train.count - offset);
    const slice = bankNormed.subarray(offset * train.dim, (offset + n) * train.dim);
    bankChunks.push({ offset, t: tf.tidy(() => tf.transpose(tf.tensor2d(slice, [n, train.dim]))) });
  }
  const queries = l2NormalizeRows(test.features, test.dim);
  try {
    for (let start = 0; start < test.count; start += chunkSize) {
      const rows = Math.min(chunkSize, test.count - start);
      // Per bank chunk: its top-k neighbours of every query row; merged below into the global top-k.
      const parts = bankChunks.map(({ offset, t }) =>
        tf.tidy(() => {
          const q = tf.tensor2d(queries.subarray(start * test.dim, (start + rows) * test.dim), [
            rows,
            test.dim,
          ]);
          const k = Math.min(kMax, t.shape[1]);
          const { values, indices } = tf.topk(tf.matMul(q, t), k, true);
          return {
            k,
            offset,
            vals: values.dataSync() as Float32Array,
            idx: indices.dataSync() as Int32Array,
          };
        }),
      );
      for (let r = 0; r < rows; r++) {
        const candidates: [number, number][] = [];
        for (const p of parts)
          for (let j = 0; j < p.k; j++) candidates.push([p.vals[r * p.k + j], p.offset + p.idx[r * p.k + j]]);
        // Decreasing similarity; ties by bank index, as a single top-k over the whole bank orders them.
        candidates.sort((x, y) => y[0] - x[0] || x[1] - y[1]);
        const top = candidates.slice(0, kMax);
        const sims = top.map(([v]) => v);
        const labels = top.map(([, i]) => train.labels[i]);
        const truth = test.labels[start + r];
        ks.forEach((k, i) => {
          const { ranking } = voteClasses(sims, labels, k, temperature, opts.numClasses);
          if (ranking[0] === truth) hits1[i]++;
          if (ranking.slice(0, Math.min(5, k)).includes(truth)) hits5[i]++;
        });
      }
    }
  } finally {
    for (const c of bankChunks) c.t.dispose();
  }
  return ks.map((_, i) => ({
    k: requested[i],
    top1: (100 * hits1[i]) / test.count,
    top5: (100 * hits5[i]) / test.count,
  }));
}
