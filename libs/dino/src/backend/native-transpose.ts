import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';
import { floatOffset, heapFloats } from './native-heap';
import type { NativeBlasBinding } from './native-binding';

/**
 * `Transpose` for the wasm backend when the permutation swaps two adjacent groups of axes — a
 * 2-D transpose, a batched one, or `[B, N, H, d] → [B, H, N, d]` — which are all the model asks
 * for. The addon copies in small square tiles (4–5× faster than the wasm loop on [4160, 768]);
 * other permutations, other dtypes and small tensors use the previous kernel.
 */

const MIN_SIZE = 1024;

export interface AxisSwap {
  outer: number;
  rows: number;
  cols: number;
  inner: number;
}

/** Reads `perm` as [0..a), [b..c), [a..b), [c..n) and returns the group sizes, or null. */
export function axisSwapOf(shape: readonly number[], perm: readonly number[]): AxisSwap | null {
  const n = shape.length;
  if (perm.length !== n) return null;
  let a = 0;
  while (a < n && perm[a] === a) a++;
  if (a === n) return null;
  let c = n;
  while (perm[c - 1] === c - 1) c--;
  const b = perm[a];
  if (b <= a || b >= c) return null;
  for (let j = 0; j < c - b; j++) if (perm[a + j] !== b + j) return null;
  for (let j = 0; j < b - a; j++) if (perm[a + (c - b) + j] !== a + j) return null;
  const size = (from: number, to: number) => tf.util.sizeFromShape(shape.slice(from, to) as number[]);
  return { outer: size(0, a), rows: size(a, b), cols: size(b, c), inner: size(c, n) };
}

export function nativeTranspose(blas: NativeBlasBinding, previous: tf.KernelFunc): tf.KernelFunc {
  return (args: Parameters<tf.KernelFunc>[0]) => {
    const { x } = args.inputs;
    if (!x) throw new Error('Transpose: input x is required');
    const perm = (args.attrs?.perm ?? []) as number[];
    const swap = x.dtype === 'float32' ? axisSwapOf(x.shape, perm) : null;
    if (!swap || tf.util.sizeFromShape(x.shape) < MIN_SIZE) return previous(args);
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(
      perm.map((p) => x.shape[p]),
      'float32',
    );
    const heap = heapFloats(backend);
    blas.swapAxes(
      heap,
      floatOffset(backend, x),
      heap,
      floatOffset(backend, out),
      swap.outer,
      swap.rows,
      swap.cols,
      swap.inner,
    );
    return out;
  };
}
