import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';

/**
 * `Slice` that reads the input through a view of the wasm heap. The stock kernel first copies
 * the whole input out of the heap (`readSync`), so cutting n pieces out of a tensor costs n full
 * copies (tfjs-speed.md §1.4). `tf.split` and `tf.unstack` call the stock slice directly and are
 * not helped by this override.
 */

type KernelArgs = Parameters<tf.KernelFunc>[0];
type Fallback = tf.KernelFunc;

type HeapArray = Float32Array | Int32Array | Uint8Array;

function heapView(heap: ArrayBuffer, dtype: tf.DataType, offset: number, size: number): HeapArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(heap, offset, size);
    case 'int32':
      return new Int32Array(heap, offset, size);
    case 'bool':
      return new Uint8Array(heap, offset, size);
    default:
      throw new Error(`Slice: no heap view for dtype ${dtype}`);
  }
}

/**
 * Copies the box `begin`/`size` of a row-major `shape` array into `dst`, in runs as long as the
 * box allows: trailing dimensions taken whole merge into one contiguous run.
 */
export function copyBox(
  src: HeapArray,
  shape: readonly number[],
  begin: readonly number[],
  size: readonly number[],
  dst: HeapArray,
): void {
  const rank = shape.length;
  if (rank === 0) {
    dst[0] = src[0];
    return;
  }
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1] * shape[d + 1];
  let runDim = rank - 1;
  while (runDim > 0 && size[runDim] === shape[runDim]) runDim--;
  const run = size[runDim] * strides[runDim];
  const runStart = begin[runDim] * strides[runDim];
  const counter = new Array<number>(runDim).fill(0);
  const runs = tf.util.sizeFromShape(size.slice(0, runDim) as number[]);
  let outPos = 0;
  for (let i = 0; i < runs; i++) {
    let offset = runStart;
    for (let d = 0; d < runDim; d++) offset += (begin[d] + counter[d]) * strides[d];
    dst.set(src.subarray(offset, offset + run), outPos);
    outPos += run;
    for (let d = runDim - 1; d >= 0; d--) {
      if (++counter[d] < size[d]) break;
      counter[d] = 0;
    }
  }
}

export function viewSlice(stock: Fallback) {
  return (args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    const { x } = args.inputs;
    if (!x || (x.dtype !== 'float32' && x.dtype !== 'int32' && x.dtype !== 'bool')) return stock(args);
    const backend = asWasmBackend(args.backend);
    const [begin, size] = tf.slice_util.parseSliceParams(
      x,
      args.attrs?.begin as number | number[],
      args.attrs?.size as number | number[] | undefined,
    );
    // Views are taken after the output is allocated: an allocation may grow (and detach) the heap.
    const out = backend.makeOutput(size, x.dtype);
    const count = tf.util.sizeFromShape(size);
    if (count === 0) return out;
    const heap = backend.wasm.HEAPU8.buffer as ArrayBuffer;
    const input = backend.dataIdMap.get(x.dataId);
    const output = backend.dataIdMap.get(out.dataId);
    if (!input || !output) throw new Error('Slice: wasm backend lost track of a tensor');
    const src = heapView(heap, x.dtype, input.memoryOffset, tf.util.sizeFromShape(x.shape));
    const dst = heapView(heap, x.dtype, output.memoryOffset, count);
    copyBox(src, x.shape, begin, size, dst);
    return out;
  };
}
