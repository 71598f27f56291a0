import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { installWasmKernels } from '../src/backend/wasm-kernels';
import { nativeBlasBinding, type NativeBlasBinding } from '../src/backend/native-binding';
import { NATIVE_MIN_MACS, nativeBatchMatMul, nativeFusedMatMul } from '../src/backend/native-matmul';
import { nativeUnary } from '../src/backend/native-unary';
import { axisSwapOf, nativeTranspose } from '../src/backend/native-transpose';
import { nativeSum } from '../src/backend/native-reduce';
import {
  installNativeKernels,
  nativeKernelsInstalled,
  uninstallNativeKernels,
} from '../src/backend/native-kernels';
import { selectBackend } from '../src/backend/select-backend';
import { rngFor, uniform } from '../src/rng';

// tfjs-node is optional; make it missing so that the automatic choice is wasm on every machine.
jest.mock(
  '@tensorflow/tfjs-node-gpu',
  () => {
    throw new Error("Cannot find module '@tensorflow/tfjs-node-gpu'");
  },
  { virtual: true },
);
jest.mock(
  '@tensorflow/tfjs-node',
  () => {
    throw new Error("Cannot find module '@tensorflow/tfjs-node'");
  },
  { virtual: true },
);

const lookup = nativeBlasBinding();

function values(shape: number[], seed: number): Float32Array {
  return uniform(rngFor(seed, 'native-kernels-test'), tf.util.sizeFromShape(shape), -1, 1);
}

async function onCpu<T>(fn: () => T): Promise<T> {
  await tf.setBackend('cpu');
  try {
    return fn();
  } finally {
    await tf.setBackend('wasm');
  }
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  expect(actual.length).toBe(expected.length);
  let scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  if (!(worst <= 1e-5 * scale)) throw new Error(`${what}: max abs error ${worst} (scale ${scale})`);
}

interface Case {
  a: number[];
  b: number[];
  transposeA?: boolean;
  transposeB?: boolean;
  bias?: number[];
  activation?: 'linear' | 'relu' | 'relu6' | 'leakyrelu' | 'sigmoid' | 'elu' | 'prelu';
}

const matMulCases: Case[] = [
  { a: [64, 48], b: [48, 32] },
  { a: [64, 48], b: [32, 48], transposeB: true },
  { a: [48, 64], b: [48, 32], transposeA: true },
  { a: [48, 64], b: [32, 48], transposeA: true, transposeB: true },
  { a: [4, 17, 16], b: [4, 17, 16], transposeB: true }, // attention scores Q·Kᵀ
  { a: [4, 16, 12], b: [4, 16, 10], transposeA: true },
  { a: [4, 12, 16], b: [16, 9] }, // stacked left operand, shared right: one tall product
  { a: [4, 12, 16], b: [9, 16], transposeB: true },
  { a: [1, 12, 16], b: [4, 16, 9] },
  { a: [16, 12], b: [4, 16, 9], transposeA: true },
  { a: [2, 1, 12, 16], b: [1, 3, 9, 16], transposeB: true },
  { a: [3, 65, 16], b: [3, 65, 16], transposeA: true },
  { a: [5, 7], b: [7, 3] }, // tiny: stays on the previous kernel
];

const fusedCases: Case[] = [
  { a: [1, 64, 48], b: [1, 48, 32], bias: [32] },
  { a: [1, 64, 48], b: [1, 48, 32], bias: [32], activation: 'relu' },
  { a: [1, 64, 48], b: [1, 32, 48], transposeB: true, bias: [32], activation: 'relu6' },
  { a: [1, 48, 64], b: [1, 48, 32], transposeA: true, bias: [1], activation: 'sigmoid' },
  { a: [1, 64, 48], b: [1, 48, 32], activation: 'elu' },
  { a: [1, 64, 48], b: [1, 48, 32], bias: [32], activation: 'leakyrelu' },
  { a: [3, 20, 24], b: [1, 24, 16], bias: [16], activation: 'relu' },
  { a: [1, 64, 48], b: [1, 48, 32], bias: [32], activation: 'prelu' }, // previous kernel
];

function label(c: Case): string {
  const act = c.activation ? ` ${c.activation}` : '';
  const bias = c.bias ? ` + bias[${c.bias}]` : '';
  return `[${c.a}]${c.transposeA ? 'ᵀ' : ''} · [${c.b}]${c.transposeB ? 'ᵀ' : ''}${bias}${act}`;
}

function macsOf(c: Case): number {
  const ra = c.a.length;
  const rb = c.b.length;
  const m = c.transposeA ? c.a[ra - 1] : c.a[ra - 2];
  const k = c.transposeA ? c.a[ra - 2] : c.a[ra - 1];
  const n = c.transposeB ? c.b[rb - 2] : c.b[rb - 1];
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(c.a.slice(0, -2), c.b.slice(0, -2));
  return tf.util.sizeFromShape(outer) * m * n * k;
}

/**
 * Runs a case with the tensors built from the same seeds on the current backend. The cpu backend
 * gets the batch dimensions broadcast explicitly: its own broadcasting of two rank-4 operands is
 * not what matMul specifies.
 */
function runCase(c: Case, i: number, explicitBroadcast = false): Float32Array {
  return tf.tidy(() => {
    let a = tf.tensor(values(c.a, 2 * i), c.a);
    let b = tf.tensor(values(c.b, 2 * i + 1), c.b);
    if (explicitBroadcast && a.rank > 2 && b.rank > 2) {
      const outer = tf.broadcast_util.assertAndGetBroadcastShape(c.a.slice(0, -2), c.b.slice(0, -2));
      a = tf.broadcastTo(a, [...outer, ...c.a.slice(-2)]);
      b = tf.broadcastTo(b, [...outer, ...c.b.slice(-2)]);
    }
    if (c.bias === undefined && c.activation === undefined) {
      return tf.matMul(a, b, c.transposeA, c.transposeB).dataSync() as Float32Array;
    }
    const bias = c.bias ? tf.tensor(values(c.bias, 100 + i), c.bias) : undefined;
    const prelu = c.activation === 'prelu' ? tf.fill([32], 0.3) : undefined;
    return tf.fused
      .matMul({
        a,
        b,
        transposeA: c.transposeA,
        transposeB: c.transposeB,
        bias,
        activation: c.activation ?? 'linear',
        preluActivationWeights: prelu,
        leakyreluAlpha: 0.15,
      })
      .dataSync() as Float32Array;
  });
}

if (!lookup.blas) {
  describe('native kernels (addon not built here)', () => {
    it('leave the wasm-fast kernels in place and say why', async () => {
      await tf.setBackend('wasm');
      installWasmKernels();
      const result = installNativeKernels();
      expect(result).toMatchObject({ installed: false });
      expect(nativeKernelsInstalled()).toBe(false);
      // CI installs OpenBLAS and builds the addon (scripts/setup.sh), so there it must load.
      expect(process.env.CI).toBeUndefined();
    });
  });
} else {
  const blas = lookup.blas;

  describe('native matmul kernels on the wasm heap', () => {
    const calls = { gemm: 0, previous: 0 };
    // Counting wrappers tell which cases really ran on BLAS and which on the previous kernel.
    const counting: NativeBlasBinding = {
      ...blas,
      sgemm: (...args) => {
        calls.gemm++;
        blas.sgemm(...args);
      },
      sgemmBatch: (...args) => {
        calls.gemm++;
        blas.sgemmBatch(...args);
      },
      biasActivation: (...args) => blas.biasActivation(...args),
      unary: (...args) => blas.unary(...args),
      swapAxes: (...args) => blas.swapAxes(...args),
      columnSums: (...args) => blas.columnSums(...args),
      setThreads: (n) => blas.setThreads(n),
      threads: () => blas.threads(),
      info: () => blas.info(),
    };
    const saved = new Map<string, tf.KernelConfig>();

    beforeAll(async () => {
      await tf.setBackend('wasm');
      installWasmKernels();
      for (const name of ['BatchMatMul', '_FusedMatMul', 'Exp', 'Erf', 'Transpose', 'Sum'] as const) {
        const previous = tf.getKernel(name, 'wasm')!;
        saved.set(name, previous);
        const make =
          name === 'BatchMatMul'
            ? nativeBatchMatMul
            : name === '_FusedMatMul'
              ? nativeFusedMatMul
              : name === 'Transpose'
                ? nativeTranspose
                : name === 'Sum'
                  ? nativeSum
                  : (b: NativeBlasBinding, prev: tf.KernelFunc) => nativeUnary(name, b, prev);
        const countedPrevious: tf.KernelFunc = (args) => {
          calls.previous++;
          return previous.kernelFunc(args);
        };
        tf.unregisterKernel(name, 'wasm');
        tf.registerKernel({ ...previous, kernelFunc: make(counting, countedPrevious) });
      }
    });

    afterAll(() => {
      for (const [name, config] of saved) {
        tf.unregisterKernel(name, 'wasm');
        tf.registerKernel(config);
      }
    });

    it.each([...matMulCases, ...fusedCases].map((c, i) => [label(c), c, i] as const))(
      'matches the cpu backend: %s',
      async (_name, c, i) => {
        const expected = await onCpu(() => runCase(c, i, true));
        calls.gemm = 0;
        calls.previous = 0;
        const before = tf.memory().numTensors;
        const actual = runCase(c, i);
        expect(tf.memory().numTensors).toBe(before);
        expectClose(actual, expected, label(c));
        const native = macsOf(c) >= NATIVE_MIN_MACS && c.activation !== 'prelu';
        expect(calls.gemm).toBe(native ? 1 : 0);
        expect([i, calls.previous]).toEqual([i, native ? 0 : 1]);
      },
    );

    it('computes Exp and Erf as the cpu backend does, NaN and infinities included', async () => {
      const x = new Float32Array(3001);
      for (let i = 0; i < x.length; i++) x[i] = -10 + (20 * i) / x.length;
      x.set([NaN, Infinity, -Infinity, 90, -90, 0], 0);
      const run = () =>
        tf.tidy(() => {
          const t = tf.tensor1d(x);
          return [tf.exp(t), tf.erf(t), tf.exp(tf.tensor1d([1, 2], 'int32'))].map((r) => r.dataSync());
        });
      const [exp, erf, intExp] = await onCpu(run);
      const before = tf.memory().numTensors;
      const [nExp, nErf, nIntExp] = run();
      expect(tf.memory().numTensors).toBe(before);
      expect(nExp[0]).toBeNaN();
      expect(nErf[0]).toBeNaN();
      expect([nExp[1], nExp[2], nExp[3], nErf[1], nErf[2], nErf[3], nErf[4]]).toEqual([
        Infinity,
        0,
        Infinity,
        1,
        -1,
        1,
        -1,
      ]);
      expect(Math.abs(nExp[4] - exp[4])).toBeLessThan(1e-38);
      const finite = (a: ArrayLike<number>) => Array.from(a).slice(5);
      expectClose(finite(nExp), finite(exp), 'exp');
      expectClose(finite(nErf), finite(erf), 'erf');
      expectClose(nIntExp, intExp, 'exp of int32 (previous kernel)');
    });

    it('transposes as the cpu backend does, and leaves other permutations to the previous kernel', async () => {
      const cases: Array<[number[], number[], boolean]> = [
        [[64, 48], [1, 0], true],
        [[4, 17, 16], [0, 2, 1], true],
        [[2, 17, 3, 16], [0, 2, 1, 3], true], // heads: [B, N, H, d] → [B, H, N, d]
        [[3, 4, 5, 32], [0, 3, 1, 2], true],
        [[3, 4, 5, 32], [2, 0, 3, 1], false],
        [[4, 5], [1, 0], false], // small
      ];
      for (const [i, [shape, perm, native]] of cases.entries()) {
        const run = () =>
          tf.tidy(() => tf.transpose(tf.tensor(values(shape, 300 + i), shape), perm).dataSync());
        const expected = await onCpu(run);
        calls.previous = 0;
        const before = tf.memory().numTensors;
        expect(run()).toEqual(expected);
        expect(tf.memory().numTensors).toBe(before);
        expect([i, calls.previous]).toEqual([i, native ? 0 : 1]);
      }
      expect(
        tf.tidy(() => Array.from(tf.transpose(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3], 'int32')).dataSync())),
      ).toEqual([1, 4, 2, 5, 3, 6]);
      expect(axisSwapOf([2, 3, 4], [0, 1, 2])).toBeNull();
      expect(axisSwapOf([2, 3, 4, 5], [0, 3, 1, 2])).toEqual({ outer: 2, rows: 12, cols: 5, inner: 1 });
      expect(axisSwapOf([2, 3, 4, 5], [1, 0, 2, 3])).toEqual({ outer: 1, rows: 2, cols: 3, inner: 20 });
      expect(axisSwapOf([2, 3, 4], [2, 0, 1])).toEqual({ outer: 1, rows: 6, cols: 4, inner: 1 });
      expect(axisSwapOf([2, 3, 4], [1, 2, 0])).toEqual({ outer: 1, rows: 2, cols: 12, inner: 1 });
      expect(axisSwapOf([2, 3, 4, 5], [0, 2, 3, 1])).toEqual({ outer: 2, rows: 3, cols: 20, inner: 1 });
      expect(axisSwapOf([2, 3, 4, 5], [2, 0, 3, 1])).toBeNull();
    });

    it('sums over leading axes as the cpu backend does, leaving other reductions to the previous kernel', async () => {
      const cases: Array<[number[], number | number[] | undefined, boolean, boolean]> = [
        [[260, 48], 0, false, true],
        [[4, 65, 48], [0, 1], false, true],
        [[4, 65, 48], [1, 0], true, true],
        [[4, 65, 48], -1, false, false],
        [[4, 65, 48], [0, 2], false, false],
        [[40, 30], undefined, false, true], // every axis
        [[3, 5], 0, false, false], // small
      ];
      for (const [i, [shape, axis, keepDims, native]] of cases.entries()) {
        const run = () =>
          tf.tidy(() => {
            const s = tf.sum(tf.tensor(values(shape, 400 + i), shape), axis, keepDims);
            return { shape: s.shape, data: s.dataSync() };
          });
        const expected = await onCpu(run);
        calls.previous = 0;
        const before = tf.memory().numTensors;
        const actual = run();
        expect(tf.memory().numTensors).toBe(before);
        expect(actual.shape).toEqual(expected.shape);
        expectClose(actual.data, expected.data, `sum [${shape}] over ${JSON.stringify(axis)}`);
        expect([i, calls.previous]).toEqual([i, native ? 0 : 1]);
      }
    });

    it('gives the gradients of a small chain that the cpu backend gives', async () => {
      const shapes = { x: [24, 32], w1: [32, 48], b1: [48], w2: [40, 48] };
      const chain = () => {
        const x = tf.tensor(values(shapes.x, 51), shapes.x);
        const w1 = tf.tensor(values(shapes.w1, 52), shapes.w1);
        const b1 = tf.tensor(values(shapes.b1, 53), shapes.b1);
        const w2 = tf.tensor(values(shapes.w2, 54), shapes.w2);
        const f = (x: tf.Tensor, w1: tf.Tensor, b1: tf.Tensor, w2: tf.Tensor) => {
          const h = tf.fused.matMul({ a: x, b: w1, bias: b1, activation: 'relu' });
          const y = tf.matMul(h, w2, false, true);
          const heads = tf.reshape(y, [4, 6, 40]);
          const scores = tf.matMul(heads, heads, false, true);
          return tf.sum(tf.square(scores));
        };
        const grads = tf.grads(f)([x, w1, b1, w2]);
        return grads.map((g) => g.dataSync() as Float32Array);
      };
      const expected = await onCpu(() => tf.tidy(chain));
      calls.gemm = 0;
      const before = tf.memory().numTensors;
      const actual = tf.tidy(chain);
      const again = tf.tidy(chain);
      expect(tf.memory().numTensors).toBe(before);
      expect(calls.gemm).toBeGreaterThan(8);
      actual.forEach((g, i) => expectClose(g, expected[i], `gradient ${i}`));
      again.forEach((g, i) => expect(g).toEqual(actual[i]));
    });
  });

  describe('installNativeKernels', () => {
    const saved = process.env.DINOQ_NATIVE_BLAS;
    afterEach(() => {
      if (saved === undefined) delete process.env.DINOQ_NATIVE_BLAS;
      else process.env.DINOQ_NATIVE_BLAS = saved;
    });

    it('registers over the wasm-fast kernels and puts them back', async () => {
      await tf.setBackend('wasm');
      installWasmKernels();
      const fast = tf.getKernel('BatchMatMul', 'wasm');
      const result = installNativeKernels({ threads: 1 });
      expect(result).toMatchObject({ installed: true, threads: 1 });
      expect(nativeKernelsInstalled()).toBe(true);
      expect(blas.threads()).toBe(1);
      expect(tf.getKernel('BatchMatMul', 'wasm')).not.toBe(fast);
      expect(installNativeKernels({ threads: 2 })).toMatchObject({ installed: true, threads: 2 });
      uninstallNativeKernels();
      expect(nativeKernelsInstalled()).toBe(false);
      expect(tf.getKernel('BatchMatMul', 'wasm')).toBe(fast);
      expect(() => installNativeKernels({ threads: 0 })).toThrow(/threads must be a positive integer/);
    });

    it('is chosen by selectBackend, and DINOQ_NATIVE_BLAS=off falls back to wasm-fast', async () => {
      delete process.env.DINOQ_NATIVE_BLAS;
      const native = await selectBackend('wasm');
      expect(native).toMatchObject({ name: 'wasm', kernels: 'native-blas' });
      expect(native.detail).toMatch(/OpenBLAS \(.+, \d threads?\) for BatchMatMul, _FusedMatMul/);
      expect(nativeKernelsInstalled()).toBe(true);

      process.env.DINOQ_NATIVE_BLAS = 'off';
      const fast = await selectBackend('wasm');
      expect(fast).toMatchObject({ name: 'wasm', kernels: 'wasm-fast' });
      expect(nativeKernelsInstalled()).toBe(false);
      expect(tf.tidy(() => tf.matMul(tf.ones([64, 64]), tf.ones([64, 64])).dataSync()[0])).toBe(64);

      process.env.DINOQ_NATIVE_BLAS = 'maybe';
      await expect(selectBackend('wasm')).rejects.toThrow(/DINOQ_NATIVE_BLAS="maybe" must be/);
      process.env.DINOQ_NATIVE_BLAS = 'on';
      expect(await selectBackend('wasm')).toMatchObject({ kernels: 'native-blas' });
    });
  });
}
