import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { linear, linearConstantInput } from '../src/layers/linear';
import { layerNorm, LAYER_NORM_EPS } from '../src/layers/layer-norm';
import { gelu } from '../src/layers/gelu';
import { dropPath, dropPathMask, dropPathRates } from '../src/layers/drop-path';
import { concatRows, reshape, residualAdd } from '../src/layers/structural';
import { rngFor } from '../src/rng';
import {
  compareWithReference,
  erf,
  expectClose,
  mapRows,
  matmul,
  randomInput,
  toTensor,
} from './layers-reference';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function addBias(y: Float64Array, b: Float64Array): Float64Array {
  return mapRows(y, b.length, (row) => row.map((v, j) => v + b[j]));
}

describe('linear', () => {
  it.each([
    ['widening', 3, 5],
    ['narrowing', 6, 2],
  ])('matches x·w + b in value and gradients (%s)', (_, k, n) => {
    const m = 4;
    const check = compareWithReference(
      (x, w, b) => linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      (x, w, b) => addBias(matmul(x, w, m, k, n), b),
      [randomInput([m, k], 1), randomInput([k, n], 2), randomInput([n], 3)],
    );
    expectClose(check);
  });

  it('works without a bias', () => {
    expectClose(
      compareWithReference(
        (x, w) => linear(x as tf.Tensor2D, w as tf.Tensor2D),
        (x, w) => matmul(x, w, 3, 4, 2),
        [randomInput([3, 4], 4), randomInput([4, 2], 5)],
      ),
    );
  });

  it('with a constant input gives weight and bias gradients only', () => {
    const xIn = randomInput([5, 3], 6);
    const x = toTensor(xIn) as tf.Tensor2D;
    expectClose(
      compareWithReference(
        (w, b) => linearConstantInput(x, w as tf.Tensor2D, b as tf.Tensor1D),
        (w, b) => addBias(matmul(xIn.data, w, 5, 3, 4), b),
        [randomInput([3, 4], 7), randomInput([4], 8)],
      ),
    );
    expectClose(
      compareWithReference(
        (w) => linearConstantInput(x, w as tf.Tensor2D),
        (w) => matmul(xIn.data, w, 5, 3, 2),
        [randomInput([3, 2], 9)],
      ),
    );
    const w = tf.ones([3, 2]) as tf.Tensor2D;
    expect(() => tf.grad((t: tf.Tensor) => linearConstantInput(t as tf.Tensor2D, w))(x)).toThrow();
    tf.dispose([x, w]);
  });

  it('names the mismatch in its error', () => {
    const x = tf.zeros([2, 3]) as tf.Tensor2D;
    const w = tf.zeros([4, 5]) as tf.Tensor2D;
    expect(() => linear(x, w)).toThrow(/\[2,3\].*\[4,5\]/);
    tf.dispose([x, w]);
  });
});

function layerNormRef(x: Float64Array, g: Float64Array, b: Float64Array): Float64Array {
  return mapRows(x, g.length, (row) => {
    const mean = row.reduce((s, v) => s + v, 0) / row.length;
    const variance = row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length;
    return row.map((v, j) => ((v - mean) / Math.sqrt(variance + LAYER_NORM_EPS)) * g[j] + b[j]);
  });
}

describe('layerNorm', () => {
  it('matches the textbook formula in value and gradients', () => {
    expectClose(
      compareWithReference(
        (x, g, b) => layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D),
        layerNormRef,
        [randomInput([6, 5], 10, 2, 1), randomInput([5], 11), randomInput([5], 12)],
      ),
    );
  });

  it('uses eps 1e-6 (visible on a near-constant row)', () => {
    const x = tf.tensor2d([[0, 1e-3]]);
    const g = tf.ones([2]) as tf.Tensor1D;
    const b = tf.zeros([2]) as tf.Tensor1D;
    const y = layerNorm(x, g, b);
    // var = 2.5e-7: with eps 1e-6 the output is ±0.5e-3/√(1.25e-6) = ±0.4472.
    expect(y.dataSync()[1]).toBeCloseTo(0.4472136, 5);
    tf.dispose([x, g, b, y]);
  });
});

describe('gelu', () => {
  const input = () => [randomInput([4, 9], 20, 1.5)];

  it('exact: matches x·Φ(x) in value and gradient', () => {
    expectClose(
      compareWithReference(
        (t) => gelu(t, 'exact'),
        (x) => x.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
        input(),
      ),
    );
  });

  it('tanh: matches x·sigmoid(1.5957691·(x + 0.044715x³)) in value and gradient', () => {
    expectClose(
      compareWithReference(
        (t) => gelu(t, 'tanh'),
        (x) => x.map((v) => v / (1 + Math.exp(-1.5957691 * (v + 0.044715 * v ** 3)))),
        input(),
      ),
    );
  });

  it('the two variants differ by less than 1e-3', () => {
    const t = tf.linspace(-6, 6, 241);
    const [a, b] = [gelu(t, 'exact'), gelu(t, 'tanh')];
    const d = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(1e-3);
    tf.dispose([t, a, b]);
  });
});

describe('structural ops', () => {
  it('reshape, residualAdd and concatRows pass values and gradients through', () => {
    expectClose(
      compareWithReference(
        (x) => reshape(x, [3, 4]),
        (x) => x,
        [randomInput([2, 6], 30)],
      ),
    );
    expectClose(
      compareWithReference(
        (a, b) => residualAdd(a, b),
        (a, b) => a.map((v, i) => v + b[i]),
        [randomInput([3, 2], 31), randomInput([3, 2], 32)],
      ),
    );
    expectClose(
      compareWithReference(
        (a, b, c) => concatRows([a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D]),
        (a, b, c) => Float64Array.from([...a, ...b, ...c]),
        [randomInput([2, 3], 33), randomInput([1, 3], 34), randomInput([3, 3], 35)],
      ),
    );
  });

  it('a tensor added to itself gets twice the gradient', () => {
    const x = tf.tensor2d([[1, 2]]);
    const dy = tf.tensor2d([[3, 5]]);
    const [g] = tf.grads((t: tf.Tensor) => residualAdd(t, t))([x], dy);
    expect(Array.from(g.dataSync())).toEqual([6, 10]);
    tf.dispose([x, dy, g]);
  });
});

describe('dropPath', () => {
  const B = 6;
  const tokens = 3;
  const D = 4;

  it('is the identity when p = 0 or in eval mode', () => {
    const x = tf.ones([B * tokens, D]) as tf.Tensor2D;
    expect(dropPath(x, { batch: B, rate: 0, training: true, rng: rngFor(1, 't') })).toBe(x);
    expect(dropPath(x, { batch: B, rate: 0.5, training: false })).toBe(x);
    expect(() => dropPath(x, { batch: B, rate: 0.5, training: true })).toThrow(/rng/);
    x.dispose();
  });

  it('zeroes whole samples and scales the kept ones by 1/(1−p)', () => {
    const p = 0.5;
    const x = tf.ones([B * tokens, D]) as tf.Tensor2D;
    const y = dropPath(x, { batch: B, rate: p, training: true, rng: rngFor(3, 't') });
    const rows = y.arraySync() as number[][];
    const perSample = Array.from({ length: B }, (_, b) => rows.slice(b * tokens, (b + 1) * tokens).flat());
    for (const values of perSample) {
      expect(new Set(values).size).toBe(1);
      expect(values[0] === 0 || Math.abs(values[0] - 1 / (1 - p)) < 1e-6).toBe(true);
    }
    const kept = perSample.filter((v) => v[0] !== 0).length;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(B);
    tf.dispose([x, y]);
  });

  it('masks are Bernoulli(1 − p) and reproducible from the rng', () => {
    const mask = dropPathMask(4000, 0.25, rngFor(5, 'mask'));
    const keptShare = mask.filter((m) => m !== 0).length / mask.length;
    expect(keptShare).toBeGreaterThan(0.72);
    expect(keptShare).toBeLessThan(0.78);
    expect(dropPathMask(50, 0.25, rngFor(5, 'mask'))).toEqual(mask.subarray(0, 50));
    expect(() => dropPathMask(2, 1, rngFor(5, 'mask'))).toThrow(/rate/);
  });

  it('gradient is the same per-sample mask', () => {
    const rate = 0.4;
    const mask = dropPathMask(B, rate, rngFor(7, 'g'));
    expect(new Set(mask).size).toBe(2);
    const perSample = tokens * D;
    expectClose(
      compareWithReference(
        (t) => dropPath(t as tf.Tensor2D, { batch: B, rate, training: true, rng: rngFor(7, 'g') }),
        (x) => x.map((v, i) => v * mask[Math.floor(i / perSample)]),
        [randomInput([B * tokens, D], 36)],
      ),
    );
  });

  it('rates are linearly spaced from 0 to the rate over the depth', () => {
    const rates = dropPathRates(5, 0.1);
    [0, 0.025, 0.05, 0.075, 0.1].forEach((r, i) => expect(rates[i]).toBeCloseTo(r, 12));
    expect(dropPathRates(1, 0.3)).toEqual([0]);
  });
});
