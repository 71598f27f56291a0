import * as tf from '@tensorflow/tfjs-core';

/**
 * The parts of `BackendWasm` (tfjs-backend-wasm 4.22.0) that the kernel overrides rely on.
 * They are internals, so they are spelled out here — one place to check on a version bump.
 */
export interface WasmTensorData {
  /** Id under which the C++ side knows the buffer (`register_tensor`). */
  id: number;
  /** Byte offset of the buffer in the wasm heap. */
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

type CwrapArg = 'number' | 'array';

export interface WasmModuleInternals {
  HEAPU8: Uint8Array;
  cwrap(name: string, returnType: null, argTypes: CwrapArg[]): (...args: Array<number | Uint8Array>) => void;
  tfjs: {
    /** Makes `size` floats at `memoryOffset` known to C++ kernels as tensor `id`; copies nothing. */
    registerTensor(id: number, size: number, memoryOffset: number): void;
    /** Forgets tensor `id` and runs its disposal callbacks (e.g. drops cached XNNPACK operators); frees nothing. */
    disposeData(id: number): void;
  };
}

export interface WasmBackendInternals {
  wasm: WasmModuleInternals;
  dataIdMap: { get(dataId: tf.DataId): WasmTensorData | undefined };
  /** Shared counter for C++ tensor ids; temporary ids drawn from it never collide with real ones. */
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: tf.DataId): void;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  numDataIds(): number;
}

export function asWasmBackend(backend: unknown): WasmBackendInternals {
  const b = backend as Partial<WasmBackendInternals> | null;
  if (
    !b ||
    !b.wasm ||
    typeof b.wasm.cwrap !== 'function' ||
    !b.wasm.tfjs ||
    !b.dataIdMap ||
    typeof b.dataIdNextNumber !== 'number'
  ) {
    throw new Error(
      'wasm kernel overrides: the backend does not expose the BackendWasm internals they need ' +
        '(wasm.cwrap, wasm.tfjs, dataIdMap, dataIdNextNumber); is @tensorflow/tfjs-backend-wasm 4.22.0 installed?',
    );
  }
  return b as WasmBackendInternals;
}

export function tensorData(backend: WasmBackendInternals, info: tf.TensorInfo): WasmTensorData {
  const data = backend.dataIdMap.get(info.dataId);
  if (!data) throw new Error(`wasm backend has no data for a tensor of shape [${info.shape.join(', ')}]`);
  return data;
}

/** Shapes cross into C++ as the bytes of an Int32Array (cwrap 'array' argument). */
export function shapeBytes(shape: readonly number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}
