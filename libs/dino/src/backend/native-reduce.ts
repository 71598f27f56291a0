import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';
import { floatOffset, heapFloats } from './native-heap';
import type { NativeBlasBinding } from './native-binding';

/**
 * `Sum` over leading axes for the wasm backend: bias and LayerNorm gradients are column sums of
 * [tokens, channels] tensors, which the wasm kernel computes by transposing the whole tensor
 * first (tfjs-speed.md §1.7; ~15 ms for [4160, 768], 0.3 ms here). Sums over other axes, other
 * dtypes and small tensors use the previous kernel.
 */

const MIN_SIZE = 1024;

/** How many leading axes `axis` reduces (they must be exactly 0..p-1), or 0 when it is not such a prefix. */
export function leadingAxes(shape: readonly number[], axis: number | number[] | null | undefined): number {
  // No axis means every axis, as in tf.sum.
  const all = shape.map((_, i) => i);
  const axes = [...tf.util.parseAxisParam(axis ?? all, shape as number[])].sort((a, b) => a - b);
  return axes.length > 0 && axes.every((a, i) => a === i) ? axes.length : 0;
}

export function nativeSum(blas: NativeBlasBinding, previous: tf.KernelFunc): tf.KernelFunc {
  return (args: Parameters<tf.KernelFunc>[0]) => {
    const { x } = args.inputs;
    if (!x) throw new Error('Sum: input x is required');
    const size = tf.util.sizeFromShape(x.shape);
    if (x.dtype !== 'float32' || size < MIN_SIZE) return previous(args);
    const p = leadingAxes(x.shape, args.attrs?.axis as number | number[] | null | undefined);
    if (p === 0) return previous(args);
    const keepDims = Boolean(args.attrs?.keepDims);
    const outShape = keepDims ? x.shape.map((d, i) => (i < p ? 1 : d)) : x.shape.slice(p);
    const cols = tf.util.sizeFromShape(x.shape.slice(p));
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(outShape, 'float32');
    const heap = heapFloats(backend);
    blas.columnSums(heap, floatOffset(backend, x), heap, floatOffset(backend, out), size / cols, cols);
    return out;
  };
}
