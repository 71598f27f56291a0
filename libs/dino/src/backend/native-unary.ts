import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';
import { floatOffset, heapFloats } from './native-heap';
import type { NativeBlasBinding } from './native-binding';

/**
 * `Exp` and `Erf` for the wasm backend, vectorised in the addon. The wasm build evaluates both
 * with scalar libm loops (8–25 ns per element); exact GELU calls Erf on every MLP activation
 * forward and backward and Exp in its backward, which made them ~20 % of a training step once
 * the matmuls moved to BLAS. Erf uses the same Abramowitz & Stegun formula as tfjs's cpu kernel.
 */

export const NATIVE_UNARY_OPS = { Exp: 0, Erf: 1 } as const;
export type NativeUnaryKernel = keyof typeof NATIVE_UNARY_OPS;

type KernelArgs = Parameters<tf.KernelFunc>[0];

export function nativeUnary(
  name: NativeUnaryKernel,
  blas: NativeBlasBinding,
  previous: tf.KernelFunc,
): tf.KernelFunc {
  const op = NATIVE_UNARY_OPS[name];
  return (args: KernelArgs) => {
    const { x } = args.inputs;
    if (!x) throw new Error(`${name}: input x is required`);
    if (x.dtype !== 'float32') return previous(args);
    const backend = asWasmBackend(args.backend);
    const out = backend.makeOutput(x.shape, 'float32');
    const size = tf.util.sizeFromShape(x.shape);
    if (size === 0) return out;
    const heap = heapFloats(backend);
    blas.unary(op, heap, floatOffset(backend, x), heap, floatOffset(backend, out), size);
    return out;
  };
}
