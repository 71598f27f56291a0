import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { parseRunConfig, type RunConfigInput } from '@dinoq/config';
import { disposeParams, type Params } from '../src/params';
import { initDinoParams, paramShapes } from '../src/init';
import { patchEmbed, patchify } from '../src/vit/patch-embed';
import { attention } from '../src/vit/attention';
import { assembleTokens, clsRows } from '../src/vit/tokens';
import { intermediateLayers, lastSelfAttention, vitForward } from '../src/vit/vit';
import {
  compareWithReference,
  expectClose,
  mapRows,
  matmul,
  maxAbsDiff,
  randomInput,
  toTensor,
} from './layers-reference';

const tinyInput: RunConfigInput = {
  model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 2, numHeads: 2, dropPathRate: 0.1 },
  head: { outDim: 32, hiddenDim: 24, bottleneckDim: 8, nlayers: 3 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
};
const config = parseRunConfig(tinyInput);

let params: Params;

beforeAll(async () => {
  await tf.setBackend('cpu');
  params = initDinoParams(config, 1);
});

afterAll(() => disposeParams(params));

function images(b: number, h: number, w: number, seed: number, c = 3): tf.Tensor4D {
  return toTensor(randomInput([b, h, w, c], seed)) as tf.Tensor4D;
}

describe('patch embedding', () => {
  it('rows are patches in row-major order, each laid out (py, px, c)', () => {
    const [B, H, W, C, p] = [2, 4, 6, 3, 2];
    const x = tf.tensor4d(
      Float32Array.from({ length: B * H * W * C }, (_, i) => i),
      [B, H, W, C],
    );
    const rows = patchify(x, p).arraySync();
    const src = x.arraySync();
    expect(rows.length).toBe(B * (H / p) * (W / p));
    let r = 0;
    for (let b = 0; b < B; b++)
      for (let gy = 0; gy < H / p; gy++)
        for (let gx = 0; gx < W / p; gx++, r++) {
          const want: number[] = [];
          for (let py = 0; py < p; py++)
            for (let px = 0; px < p; px++)
              for (let c = 0; c < C; c++) want.push(src[b][gy * p + py][gx * p + px][c]);
          expect(rows[r]).toEqual(want);
        }
    x.dispose();
  });

  it('equals a stride-p convolution with the weight read as an HWIO filter', () => {
    const x = images(2, 8, 12, 1);
    const { tokens, gridH, gridW } = patchEmbed(params, x, 4);
    expect([gridH, gridW]).toEqual([2, 3]);
    const filter = tf.reshape(params.get('backbone.patch_embed.proj.weight')!, [4, 4, 3, 16]) as tf.Tensor4D;
    const conv = tf.add(tf.conv2d(x, filter, 4, 'valid'), params.get('backbone.patch_embed.proj.bias')!);
    expect(maxAbsDiff(tokens.dataSync(), conv.dataSync())).toBeLessThan(1e-5);
    expect(() => patchEmbed(params, images(1, 6, 8, 2), 4)).toThrow(/multiples of 4/);
    tf.dispose([x, tokens, filter, conv]);
  });
});

/** Multi-head self-attention in float64: per image and head, softmax(q·kᵀ/√d)·v, then the projection. */
function attentionRef(B: number, N: number, D: number, H: number) {
  const d = D / H;
  return (x: Float64Array, ...w: Float64Array[]): Float64Array => {
    const [wq, bq, wk, bk, wv, bv, wp, bp] = w;
    const lin = (a: Float64Array, wt: Float64Array, b: Float64Array) =>
      mapRows(matmul(a, wt, B * N, D, D), D, (row) => row.map((v, j) => v + b[j]));
    const [q, k, v] = [lin(x, wq, bq), lin(x, wk, bk), lin(x, wv, bv)];
    const context = new Float64Array(B * N * D);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < N; i++) {
          const scores = Array.from({ length: N }, (_, j) => {
            let s = 0;
            for (let c = 0; c < d; c++) s += q[(b * N + i) * D + h * d + c] * k[(b * N + j) * D + h * d + c];
            return s / Math.sqrt(d);
          });
          const top = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - top));
          const z = e.reduce((s, v) => s + v, 0);
          for (let j = 0; j < N; j++)
            for (let c = 0; c < d; c++)
              context[(b * N + i) * D + h * d + c] += (e[j] / z) * v[(b * N + j) * D + h * d + c];
        }
    return mapRows(matmul(context, wp, B * N, D, D), D, (row) => row.map((v, j) => v + bp[j]));
  };
}

describe('attention', () => {
  const [B, N, D, H] = [2, 3, 4, 2];
  const names = [
    'q.weight',
    'q.bias',
    'k.weight',
    'k.bias',
    'v.weight',
    'v.bias',
    'proj.weight',
    'proj.bias',
  ];

  it('matches per-head softmax attention in value and gradients (x and every weight)', () => {
    const inputs = [
      randomInput([B * N, D], 50),
      ...names.map((n, i) => randomInput(n.endsWith('weight') ? [D, D] : [D], 51 + i, 0.7)),
    ];
    const check = compareWithReference(
      (x, ...w) => {
        const map = new Map(names.map((n, i) => [`a.${n}`, w[i]]));
        return attention(map, 'a', x as tf.Tensor2D, { batch: B, tokens: N, numHeads: H }).out;
      },
      attentionRef(B, N, D, H),
      inputs,
    );
    expectClose(check, 3e-5);
  });

  it('returns probabilities whose rows sum to 1', () => {
    const map = new Map(
      names.map((n, i) => [`a.${n}`, toTensor(randomInput(n.endsWith('weight') ? [D, D] : [D], 60 + i))]),
    );
    const x = toTensor(randomInput([B * N, D], 70)) as tf.Tensor2D;
    const { out, probs } = attention(map, 'a', x, { batch: B, tokens: N, numHeads: H }, true);
    expect(probs!.shape).toEqual([B, H, N, N]);
    const sums = tf.sum(probs!, -1);
    expect(maxAbsDiff(sums.dataSync(), new Float32Array(B * H * N).fill(1))).toBeLessThan(1e-6);
    tf.dispose([...map.values(), x, out, probs!, sums]);
  });
});

describe('token assembly', () => {
  it('prepends [CLS], adds positions, and sends gradients back to all three', () => {
    const [B, N, D] = [2, 3, 2];
    expectClose(
      compareWithReference(
        (cls, patches, pos) => assembleTokens(cls, patches as tf.Tensor2D, pos as tf.Tensor2D, B),
        (cls, patches, pos) => {
          const out = new Float64Array(B * (N + 1) * D);
          for (let b = 0; b < B; b++)
            for (let t = 0; t <= N; t++)
              for (let c = 0; c < D; c++) {
                const token = t === 0 ? cls[c] : patches[(b * N + t - 1) * D + c];
                out[(b * (N + 1) + t) * D + c] = token + pos[t * D + c];
              }
          return out;
        },
        [randomInput([1, 1, D], 80), randomInput([B * N, D], 81), randomInput([N + 1, D], 82)],
      ),
    );
  });

  it('clsRows picks each image’s first row', () => {
    const [B, T, D] = [3, 4, 2];
    expectClose(
      compareWithReference(
        (x) => clsRows(x as tf.Tensor2D, B),
        (x) => Float64Array.from({ length: B * D }, (_, i) => x[Math.floor(i / D) * T * D + (i % D)]),
        [randomInput([B * T, D], 83)],
      ),
    );
  });
});

describe('ViT forward', () => {
  const opts = { config };

  it.each([
    [16, 16],
    [8, 8],
    [16, 8],
    [12, 20],
  ])('gives [B, D] features for %i×%i images', (h, w) => {
    const x = images(2, h, w, 3);
    const y = vitForward(params, x, opts);
    expect(y.shape).toEqual([2, 16]);
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, y]);
  });

  it('[CLS] feature and the last intermediate layer agree', () => {
    const x = images(2, 8, 12, 4);
    const cls = vitForward(params, x, opts);
    const layers = intermediateLayers(params, x, 2, opts);
    expect(layers.map((l) => l.shape)).toEqual([
      [2, 7, 16],
      [2, 7, 16],
    ]);
    const first = tf.reshape(tf.slice(layers[1], [0, 0, 0], [2, 1, 16]), [2, 16]);
    expect(maxAbsDiff(cls.dataSync(), first.dataSync())).toBeLessThan(1e-6);
    expect(maxAbsDiff(layers[0].dataSync(), layers[1].dataSync())).toBeGreaterThan(1e-3);
    expect(() => intermediateLayers(params, x, 3, opts)).toThrow(/1\.\.2/);
    tf.dispose([x, cls, first, ...layers]);
  });

  it('lastSelfAttention is [B, heads, N+1, N+1] with rows summing to 1', () => {
    const x = images(3, 16, 8, 5);
    const attn = lastSelfAttention(params, x, opts);
    expect(attn.shape).toEqual([3, 2, 9, 9]);
    const sums = tf.sum(attn, -1);
    expect(maxAbsDiff(sums.dataSync(), new Float32Array(3 * 2 * 9).fill(1))).toBeLessThan(1e-6);
    tf.dispose([x, attn, sums]);
  });

  it('drop path: eval is deterministic; training draws masks from (seed, step)', () => {
    const x = images(4, 8, 8, 6);
    const run = (o: Parameters<typeof vitForward>[2]) => {
      const y = vitForward(params, x, o);
      const data = y.dataSync().slice();
      y.dispose();
      return data;
    };
    const evalOut = run({ config });
    const heavy = { config, training: true, dropPathRate: 0.6, seed: 3 };
    const a = run({ ...heavy, step: 1 });
    expect(maxAbsDiff(run({ ...heavy, step: 1 }), a)).toBe(0);
    expect(maxAbsDiff(run({ ...heavy, step: 2 }), a)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(a, evalOut)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(run({ ...heavy, dropPathRate: 0 }), evalOut)).toBe(0);
    expect(() => run({ config, training: true })).toThrow(/seed/);
    x.dispose();
  });

  it('runs without q/k/v biases when qkvBias is off', () => {
    const noBias = parseRunConfig({ ...tinyInput, model: { ...tinyInput.model, qkvBias: false } });
    const p = initDinoParams(noBias, 2);
    expect(p.has('backbone.blocks.0.attn.q.bias')).toBe(false);
    const x = images(1, 8, 8, 9);
    const y = vitForward(p, x, { config: noBias });
    expect(y.shape).toEqual([1, 16]);
    tf.dispose([x, y]);
    disposeParams(p);
  });

  it('names what is wrong with mismatched inputs', () => {
    const gray = images(1, 8, 8, 7, 1);
    expect(() => vitForward(params, gray, opts)).toThrow(/1 channels.*inChans is 3/);
    const deeper = parseRunConfig({ ...tinyInput, model: { ...tinyInput.model, depth: 3 } });
    const x = images(1, 8, 8, 8);
    expect(() => vitForward(params, x, { config: deeper })).toThrow(/3 blocks/);
    tf.dispose([gray, x]);
  });
});

describe('backbone parameter counts (spec §2.1, pos table for 224 px)', () => {
  it.each([
    ['vit_tiny', 16, 5_524_416],
    ['vit_small', 16, 21_665_664],
    ['vit_base', 16, 85_798_656],
    ['vit_tiny', 8, 5_526_720],
    ['vit_small', 8, 21_670_272],
    ['vit_base', 8, 85_807_872],
  ] as const)('%s/%i has %i', (arch, patchSize, expected) => {
    const shapes = paramShapes(parseRunConfig({ model: { arch, patchSize } }));
    let n = 0;
    for (const [name, shape] of shapes)
      if (name.startsWith('backbone.')) n += shape.reduce((a, b) => a * b, 1);
    expect(n).toBe(expected);
  });

  it('the tiny test model holds what paramShapes promises', () => {
    let n = 0;
    for (const shape of paramShapes(config).values()) n += shape.reduce((a, b) => a * b, 1);
    expect([...params.values()].reduce((sum, t) => sum + t.size, 0)).toBe(n);
  });
});
