import type * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';

/**
 * `Identity` and same-dtype `Cast` that share the input's buffer (one more reference) instead of
 * copying it, as the cpu backend and wasm's own `Reshape` do. Tensors are immutable, so sharing is
 * safe, and tfjs clones every tensor it saves for the backward pass, so on wasm autodiff otherwise
 * copies most activations once more (tfjs-speed.md §1.5).
 *
 * Note: `tf.memory().numBytes` counts a shared buffer once per tensor.
 */

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Fallback = tf.KernelFunc;

const SHAREABLE: ReadonlySet<tf.DataType> = new Set<tf.DataType>(['float32', 'int32', 'bool']);

function share(args: KernelArgs, x: tf.TensorInfo): tf.TensorInfo {
  asWasmBackend(args.backend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function sharedIdentity(stock: Fallback) {
  return (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const { x } = args.inputs;
    if (!x || !SHAREABLE.has(x.dtype)) return stock(args);
    return share(args, x);
  };
}

export function sharedCast(stock: Fallback) {
  return (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const { x } = args.inputs;
    if (!x || args.attrs?.dtype !== x.dtype || !SHAREABLE.has(x.dtype)) return stock(args);
    return share(args, x);
  };
}
