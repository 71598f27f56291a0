import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { parseRunConfig } from '@dinoq/config';
import { dinoHead, headLinearNames, l2Normalize, weightNormalized } from '../src/head';
import { initDinoParams, paramShapes } from '../src/init';
import { disposeParams } from '../src/params';
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

function normalizeRef(x: Float64Array, cols: number): Float64Array {
  return mapRows(x, cols, (row) => {
    const n = Math.max(Math.hypot(...row), 1e-12);
    return row.map((v) => v / n);
  });
}

/** W[i, k] = g[k]·v[i, k]/‖v[:, k]‖ for v [rows, K]. */
function weightNormRef(v: Float64Array, g: Float64Array, rows: number, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  for (let j = 0; j < k; j++) {
    let s = 0;
    for (let i = 0; i < rows; i++) s += v[i * k + j] ** 2;
    for (let i = 0; i < rows; i++) out[i * k + j] = (g[j] * v[i * k + j]) / Math.sqrt(s);
  }
  return out;
}

describe('head building blocks', () => {
  it('l2Normalize matches x/max(‖x‖, 1e-12) in value and gradient, and maps 0 to 0', () => {
    expectClose(
      compareWithReference(
        (x) => l2Normalize(x as tf.Tensor2D),
        (x) => normalizeRef(x, 5),
        [randomInput([4, 5], 1)],
      ),
    );
    const zero = tf.zeros([1, 3]) as tf.Tensor2D;
    const y = l2Normalize(zero);
    expect(Array.from(y.dataSync())).toEqual([0, 0, 0]);
    tf.dispose([zero, y]);
  });

  it('weightNormalized matches g·v/‖v‖ per output column in value and gradients', () => {
    expectClose(
      compareWithReference(
        (v, g) => weightNormalized(v as tf.Tensor2D, g),
        (v, g) => weightNormRef(v, g, 3, 4),
        [randomInput([3, 4], 2), randomInput([4, 1], 3, 0.5, 1)],
      ),
    );
    const v = tf.ones([3, 4]) as tf.Tensor2D;
    const g = tf.ones([1, 4]);
    expect(() => weightNormalized(v, g)).toThrow(/weight_g must be \[4, 1\]/);
    tf.dispose([v, g]);
  });
});

describe('dinoHead', () => {
  const [M, D, hidden, bottleneck, K] = [3, 4, 5, 3, 6];
  const gelu = (x: Float64Array) => x.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
  const lin = (x: Float64Array, w: Float64Array, b: Float64Array, k: number, n: number) =>
    mapRows(matmul(x, w, M, k, n), n, (row) => row.map((v, j) => v + b[j]));

  it('matches the reference head (3 layers, GELU, L2 bottleneck, weight-norm) in value and gradients', () => {
    const names = [
      'head.mlp.0.weight',
      'head.mlp.0.bias',
      'head.mlp.2.weight',
      'head.mlp.2.bias',
      'head.mlp.4.weight',
      'head.mlp.4.bias',
      'head.last_layer.weight_v',
      'head.last_layer.weight_g',
    ];
    const shapes = [
      [D, hidden],
      [hidden],
      [hidden, hidden],
      [hidden],
      [hidden, bottleneck],
      [bottleneck],
      [bottleneck, K],
      [K, 1],
    ];
    const opts = { config: { head: { nlayers: 3 }, model: { gelu: 'exact' as const } } };
    const check = compareWithReference(
      (x, ...w) => dinoHead(new Map(names.map((n, i) => [n, w[i]])), x as tf.Tensor2D, opts),
      (x, w0, b0, w1, b1, w2, b2, v, g) => {
        const h1 = gelu(lin(x, w0, b0, D, hidden));
        const h2 = gelu(lin(h1, w1, b1, hidden, hidden));
        const z = normalizeRef(lin(h2, w2, b2, hidden, bottleneck), bottleneck);
        return matmul(z, weightNormRef(v, g, bottleneck, K), M, bottleneck, K);
      },
      [randomInput([M, D], 10), ...shapes.map((s, i) => randomInput(s, 11 + i, 0.8, i === 7 ? 1 : 0))],
    );
    expectClose(check, 3e-5);
  });

  it('with normLastLayer every logit is a cosine similarity in [−1, 1]', () => {
    const config = parseRunConfig({
      model: { arch: 'custom', patchSize: 4, embedDim: 8, depth: 1, numHeads: 2 },
      head: { outDim: 64, hiddenDim: 16, bottleneckDim: 4, nlayers: 2 },
      augment: { globalCropSize: 8, localCropsNumber: 0 },
    });
    const params = initDinoParams(config, 3);
    const x = tf.mul(toTensor(randomInput([5, 8], 20)), 10) as tf.Tensor2D;
    const logits = dinoHead(params, x, { config });
    expect(logits.shape).toEqual([5, 64]);
    const values = Array.from(logits.dataSync());
    expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(1 + 1e-6);
    expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.3);
    tf.dispose([x, logits]);
    disposeParams(params);
  });
});

describe('head parameters', () => {
  it.each([
    ['vit_tiny', 21_958_912],
    ['vit_small', 22_352_128],
    ['vit_base', 23_138_560],
  ] as const)('%s default head (2048-2048-256 → 65536) has %i', (arch, expected) => {
    let n = 0;
    for (const [name, shape] of paramShapes(parseRunConfig({ model: { arch } })))
      if (name.startsWith('head.')) n += shape.reduce((a, b) => a * b, 1);
    expect(n).toBe(expected);
  });

  it('names the MLP linears like the reference', () => {
    expect(headLinearNames(1)).toEqual(['head.mlp']);
    expect(headLinearNames(3)).toEqual(['head.mlp.0', 'head.mlp.2', 'head.mlp.4']);
    const shapes = paramShapes(
      parseRunConfig({ model: { arch: 'vit_tiny' }, head: { nlayers: 1, outDim: 10, bottleneckDim: 7 } }),
    );
    expect(shapes.get('head.mlp.weight')).toEqual([192, 7]);
    expect(shapes.get('head.last_layer.weight_v')).toEqual([7, 10]);
    expect(shapes.get('head.last_layer.weight_g')).toEqual([10, 1]);
  });
});
