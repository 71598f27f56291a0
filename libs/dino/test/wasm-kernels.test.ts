import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import {
  WASM_KERNEL_OVERRIDES,
  installWasmKernels,
  uninstallWasmKernels,
  wasmKernelsInstalled,
} from '../src/backend/wasm-kernels';
import { broadcastBatchIndex } from '../src/backend/wasm-matmul';
import { rngFor, uniform } from '../src/rng';

type Values = Float32Array | Int32Array | Uint8Array;

function randomValues(shape: number[], seed: number): Float32Array {
  return uniform(rngFor(seed, 'wasm-kernels-test'), tf.util.sizeFromShape(shape), -1, 1);
}

/** Runs `fn` on the cpu backend and returns plain values, then switches back to wasm. */
async function onCpu<T>(fn: () => T): Promise<T> {
  await tf.setBackend('cpu');
  try {
    return fn();
  } finally {
    await tf.setBackend('wasm');
  }
}

function expectClose(actual: Values, expected: Values, what: string): void {
  expect(actual.length).toBe(expected.length);
  let scale = 1;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  if (!(worst <= 1e-4 * scale)) throw new Error(`${what}: max abs error ${worst} (scale ${scale})`);
}

interface MatMulCase {
  a: number[];
  b: number[];
  transposeA?: boolean;
  transposeB?: boolean;
}

// Batched cases use products of ≥ 1536 multiply-adds so that they run the override, not the stock
// fallback for tiny products (the last three check that fallback and its broadcasting).
const cases: MatMulCase[] = [
  { a: [5, 7], b: [7, 3] },
  { a: [5, 7], b: [3, 7], transposeB: true },
  { a: [7, 5], b: [7, 3], transposeA: true },
  { a: [9, 3], b: [9, 11], transposeA: true }, // wide right operand: computed as (Bᵀ·A)ᵀ
  { a: [7, 5], b: [3, 7], transposeA: true, transposeB: true },
  { a: [4, 12, 16], b: [4, 16, 9] },
  { a: [4, 17, 16], b: [4, 17, 16], transposeB: true }, // attention scores Q·Kᵀ
  { a: [4, 16, 12], b: [4, 16, 10], transposeA: true },
  { a: [3, 16, 9], b: [3, 11, 16], transposeA: true, transposeB: true },
  { a: [4, 12, 16], b: [1, 16, 9] },
  { a: [4, 12, 16], b: [9, 16], transposeB: true },
  { a: [1, 12, 16], b: [4, 16, 9] },
  { a: [16, 12], b: [4, 16, 9], transposeA: true },
  { a: [2, 3, 12, 16], b: [2, 3, 16, 9] },
  { a: [2, 1, 12, 16], b: [1, 3, 9, 16], transposeB: true },
  { a: [1, 7], b: [7, 1] },
  { a: [7, 1], b: [7, 6], transposeA: true },
  { a: [6, 1], b: [6, 1], transposeA: true },
  { a: [3, 65, 16], b: [3, 65, 16], transposeA: true },
  { a: [4, 5, 7], b: [4, 7, 3], transposeB: false },
  { a: [4, 5, 7], b: [1, 3, 7], transposeB: true },
  { a: [2, 1, 2, 3], b: [1, 3, 3, 2] },
];

function label(c: MatMulCase): string {
  return `[${c.a}]${c.transposeA ? 'ᵀ' : ''} · [${c.b}]${c.transposeB ? 'ᵀ' : ''}`;
}

/** Reference on cpu with the batch dimensions broadcast explicitly. */
function cpuMatMul(
  c: MatMulCase,
  aValues: Float32Array,
  bValues: Float32Array,
): { shape: number[]; values: Values } {
  return tf.tidy(() => {
    let a = tf.tensor(aValues, c.a);
    let b = tf.tensor(bValues, c.b);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(c.a.slice(0, -2), c.b.slice(0, -2));
    if (outer.length > 0) {
      a = tf.broadcastTo(a, [...outer, ...c.a.slice(-2)]);
      b = tf.broadcastTo(b, [...outer, ...c.b.slice(-2)]);
    }
    const out = tf.matMul(a, b, c.transposeA, c.transposeB);
    return { shape: out.shape, values: out.dataSync() as Float32Array };
  });
}

/**
 * matMul with the gradient tfjs-core registers for BatchMatMul (flagged products), spelled out
 * because the CommonJS build of tfjs-core ships without gradient registrations. Broadcast
 * batch dimensions are not reduced: the chains below do not broadcast.
 */
function matMulWithGrad(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  return tf.customGrad((x, y, save) => {
    (save as tf.GradSaveFunc)([x as tf.Tensor, y as tf.Tensor]);
    return {
      value: tf.matMul(x as tf.Tensor, y as tf.Tensor, transposeA, transposeB),
      gradFunc: (dy: tf.Tensor, [a, b]: tf.Tensor[]) => {
        if (!transposeA && !transposeB) return [tf.matMul(dy, b, false, true), tf.matMul(a, dy, true, false)];
        if (!transposeA && transposeB) return [tf.matMul(dy, b, false, false), tf.matMul(dy, a, true, false)];
        if (transposeA && !transposeB) return [tf.matMul(b, dy, false, true), tf.matMul(a, dy, false, false)];
        return [tf.matMul(b, dy, true, true), tf.matMul(dy, a, true, true)];
      },
    };
  })(a, b);
}

describe('wasm kernel overrides', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
    installWasmKernels();
  });

  afterAll(() => uninstallWasmKernels());

  it('replaces exactly the four kernels and can put the stock ones back', () => {
    expect(wasmKernelsInstalled()).toBe(true);
    const ours = WASM_KERNEL_OVERRIDES.map((k) => tf.getKernel(k, 'wasm')!.kernelFunc);
    uninstallWasmKernels();
    expect(wasmKernelsInstalled()).toBe(false);
    const stock = WASM_KERNEL_OVERRIDES.map((k) => tf.getKernel(k, 'wasm')!.kernelFunc);
    stock.forEach((f, i) => expect(f).not.toBe(ours[i]));
    installWasmKernels();
    const reinstalled = WASM_KERNEL_OVERRIDES.map((k) => tf.getKernel(k, 'wasm')!.kernelFunc);
    installWasmKernels();
    WASM_KERNEL_OVERRIDES.forEach((k, i) => {
      expect(tf.getKernel(k, 'wasm')!.kernelFunc).not.toBe(stock[i]);
      expect(tf.getKernel(k, 'wasm')!.kernelFunc).toBe(reinstalled[i]);
    });
  });

  it.each(cases.map((c) => [label(c), c] as const))('matMul %s matches the cpu backend', async (_name, c) => {
    const aValues = randomValues(c.a, 1);
    const bValues = randomValues(c.b, 2);
    const expected = await onCpu(() => cpuMatMul(c, aValues, bValues));
    const actual = tf.tidy(() => {
      const out = tf.matMul(tf.tensor(aValues, c.a), tf.tensor(bValues, c.b), c.transposeA, c.transposeB);
      return { shape: out.shape, values: out.dataSync() as Float32Array };
    });
    expect(actual.shape).toEqual(expected.shape);
    expectClose(actual.values, expected.values, label(c));
  });

  it('handles empty outputs and an empty inner dimension', () => {
    const empty = tf.tidy(() => tf.matMul(tf.zeros([2, 0, 3]), tf.ones([2, 3, 4])).shape);
    expect(empty).toEqual([2, 0, 4]);
    const zeros = tf.tidy(() => {
      // Fill the heap with garbage first so a missing zero-fill would show.
      tf.fill([2, 3, 4], 7).dataSync();
      return Array.from(tf.matMul(tf.zeros([2, 3, 0]), tf.ones([2, 0, 4])).dataSync());
    });
    expect(zeros).toEqual(new Array(24).fill(0));
  });

  it('maps broadcast batch indices like numpy', () => {
    expect(broadcastBatchIndex([2, 3], [2, 1])).toEqual([0, 0, 0, 1, 1, 1]);
    expect(broadcastBatchIndex([2, 3], [1, 3])).toEqual([0, 1, 2, 0, 1, 2]);
    expect(broadcastBatchIndex([2, 3], [3])).toEqual([0, 1, 2, 0, 1, 2]);
    expect(broadcastBatchIndex([2, 3], [])).toEqual([0, 0, 0, 0, 0, 0]);
    expect(broadcastBatchIndex([], [])).toEqual([0]);
  });

  it('gives the same gradients as the cpu backend through a matmul chain', async () => {
    const shapes = { x: [6, 5], w1: [5, 8], w2: [4, 8], q: [3, 12, 16], k: [3, 16, 12], v: [3, 10, 12] };
    const names = Object.keys(shapes) as Array<keyof typeof shapes>;
    const values = Object.fromEntries(names.map((n, i) => [n, randomValues(shapes[n], 10 + i)])) as Record<
      keyof typeof shapes,
      Float32Array
    >;
    const dyShapes = [
      [6, 4],
      [3, 16, 10],
    ];
    const dys = dyShapes.map((shape, i) => randomValues(shape, 20 + i));
    const run = (): Float32Array[] =>
      tf.tidy(() => {
        const [x, w1, w2, q, k, v] = names.map((n) => tf.tensor(values[n], shapes[n]));
        const linear = tf.grads((x: tf.Tensor, w1: tf.Tensor, w2: tf.Tensor) =>
          matMulWithGrad(matMulWithGrad(x, w1), w2, false, true),
        )([x, w1, w2], tf.tensor(dys[0], dyShapes[0]));
        const attention = tf.grads((q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
          // NN, then TN, then TT: with the linear chain's NN and NT, every flag combination runs backward.
          matMulWithGrad(matMulWithGrad(matMulWithGrad(q, k), q, true, false), v, true, true),
        )([q, k, v], tf.tensor(dys[1], dyShapes[1]));
        return [...linear, ...attention].map((g) => g.dataSync() as Float32Array);
      });
    const expected = await onCpu(run);
    const actual = run();
    expect(actual).toHaveLength(6);
    actual.forEach((g, i) => expectClose(g, expected[i], `gradient of ${names[i]}`));
  });

  it('slices exactly like the cpu backend', async () => {
    const sliceCases: Array<{
      shape: number[];
      begin: number[];
      size: number[];
      dtype: 'float32' | 'int32' | 'bool';
    }> = [
      { shape: [10], begin: [3], size: [4], dtype: 'float32' },
      { shape: [6, 5], begin: [2, 0], size: [3, 5], dtype: 'float32' },
      { shape: [6, 5], begin: [1, 2], size: [4, 2], dtype: 'float32' },
      { shape: [4, 5, 6], begin: [1, 0, 3], size: [2, 5, 3], dtype: 'float32' },
      { shape: [4, 5, 6], begin: [0, 2, 0], size: [4, 1, 6], dtype: 'int32' },
      { shape: [3, 4, 5, 6], begin: [1, 1, 1, 1], size: [2, 2, 3, 4], dtype: 'float32' },
      { shape: [2, 3, 4, 5, 6], begin: [1, 0, 2, 1, 0], size: [1, 3, 2, 3, 6], dtype: 'float32' },
      { shape: [5, 4], begin: [1, 1], size: [3, -1], dtype: 'bool' },
      { shape: [5, 4], begin: [2, 0], size: [0, 4], dtype: 'float32' },
    ];
    for (const c of sliceCases) {
      const base = randomValues(c.shape, 3);
      const make = () =>
        c.dtype === 'float32'
          ? tf.tensor(base, c.shape)
          : c.dtype === 'bool'
            ? tf.tensor(
                Array.from(base, (v) => v > 0),
                c.shape,
                'bool',
              )
            : tf.tensor(
                Array.from(base, (v) => Math.round(v * 1000)),
                c.shape,
                'int32',
              );
      const run = () => tf.tidy(() => Array.from(tf.slice(make(), c.begin, c.size).dataSync()));
      expect(run()).toEqual(await onCpu(run));
    }
    // Bit patterns survive: NaN payloads and negative zero.
    const bits = new Uint32Array([0x7fc01234, 0x80000000, 0xffc00001, 0x3f800000]);
    const sliced = tf.tidy(() =>
      tf.slice(tf.tensor(new Float32Array(bits.buffer), [2, 2]), [0, 0], [2, 1]).dataSync(),
    );
    expect(Array.from(new Uint32Array((sliced as Float32Array).slice().buffer))).toEqual([
      0x7fc01234, 0xffc00001,
    ]);
  });

  it('clones and same-dtype casts share the buffer; other casts still convert', async () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    const x = tf.tensor([1.5, -2.25, 3], [3]);
    const y = tf.clone(x);
    const z = tf.cast(x, 'float32');
    expect(y.dataId).toBe(x.dataId);
    expect(z.dataId).toBe(x.dataId);
    expect(backend.numDataIds()).toBe(before + 1);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1.5, -2.25, 3]);
    y.dispose();
    expect(Array.from(z.dataSync())).toEqual([1.5, -2.25, 3]);
    z.dispose();
    expect(backend.numDataIds()).toBe(before);

    const toInt = () => tf.tidy(() => Array.from(tf.cast(tf.tensor([1.7, -2.2, 0]), 'int32').dataSync()));
    const toFloat = () =>
      tf.tidy(() => Array.from(tf.cast(tf.tensor([4, -5], [2], 'int32'), 'float32').dataSync()));
    expect(toInt()).toEqual(await onCpu(toInt));
    expect(toFloat()).toEqual([4, -5]);
  });

  it('keeps tf.memory().numTensors and the backend data ids stable over repeated calls', () => {
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const round = () =>
      tf.tidy(() => {
        for (const c of cases) {
          const a = tf.tensor(randomValues(c.a, 5), c.a);
          const b = tf.tensor(randomValues(c.b, 6), c.b);
          tf.matMul(a, b, c.transposeA, c.transposeB).dataSync();
          const y = tf.matMul(a, b, c.transposeA, c.transposeB);
          if (c.a.length !== c.b.length || !tf.util.arraysEqual(c.a.slice(0, -2), c.b.slice(0, -2))) continue;
          tf.grads((p: tf.Tensor, q: tf.Tensor) => matMulWithGrad(p, q, c.transposeA, c.transposeB))(
            [a, b],
            tf.onesLike(y),
          );
          tf.slice(a, 0, 1).dataSync();
          tf.clone(a).dataSync();
        }
      });
    round();
    const tensors = tf.memory().numTensors;
    const dataIds = backend.numDataIds();
    for (let i = 0; i < 3; i++) round();
    expect(tf.memory().numTensors).toBe(tensors);
    expect(backend.numDataIds()).toBe(dataIds);
  });
});
