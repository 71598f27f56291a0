import type * as tf from '@tensorflow/tfjs-core';
import { tensorData, type WasmBackendInternals } from './wasm-internals';

/**
 * The wasm memory as one Float32Array, for native kernels that address tensors by float offset.
 * Take it after every allocation of the kernel: growing the memory detaches the old buffer.
 */

const BYTES_PER_FLOAT = 4;
let heapView: Float32Array | null = null;

export function heapFloats(backend: WasmBackendInternals): Float32Array {
  const buffer = backend.wasm.HEAPU8.buffer;
  if (heapView === null || heapView.buffer !== buffer) heapView = new Float32Array(buffer);
  return heapView;
}

/** Where a float32 tensor's data starts in `heapFloats`. */
export function floatOffset(backend: WasmBackendInternals, info: tf.TensorInfo): number {
  const bytes = tensorData(backend, info).memoryOffset;
  if (bytes % BYTES_PER_FLOAT !== 0) throw new Error(`wasm tensor [${info.shape}] is not float-aligned`);
  return bytes / BYTES_PER_FLOAT;
}
