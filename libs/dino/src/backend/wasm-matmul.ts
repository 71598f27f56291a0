import * as tf from '@tensorflow/tfjs-core';
import { matMulGeometry } from './matmul-geometry';
import { asWasmBackend, shapeBytes, tensorData, type WasmBackendInternals } from './wasm-internals';

/**
 * `BatchMatMul` for the wasm backend that always lands on XNNPACK.
 *
 * The stock C++ kernel uses XNNPACK only for a plain 2-D product (no transpose flag, batch 1) and
 * otherwise runs a scalar triple loop 10–20× slower (tfjs-speed.md §1.1). Autodiff of `matMul`
 * always emits transposed products and attention is batched, so here:
 *  - a transpose flag materialises the transposed operand with the C++ `Transpose` (memory-bound);
 *  - a batch is a loop of 2-D products on temporary tensor ids that alias slices of the operands
 *    and of the output (no copies); disposing a temporary id also drops the XNNPACK operator
 *    cached for it, so nothing leaks;
 *  - a batched left operand times a shared right operand is one tall 2-D product;
 *  - `Aᵀ·B` may be computed as `(Bᵀ·A)ᵀ` when that keeps the narrower matrix as the right
 *    operand, which is the one XNNPACK packs on every call when it is a fresh tensor.
 */

const BYTES_PER_FLOAT = 4;
const CPP_FLOAT32 = 0;
/** Packing the right operand costs about twice a transpose of the same size (tfjs-speed.md §2). */
const PACK_COST = 2;
/** Below this many multiply-adds per matrix, a batch is cheaper on the stock scalar loop (measured). */
const SMALL_PRODUCT_MACS = 1536;

type MatMulCall = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: number,
  transposeB: number,
  outId: number,
) => void;
type TransposeCall = (
  xId: number,
  xShape: Uint8Array,
  rank: number,
  dtype: number,
  outId: number,
  perm: Uint8Array,
  permLength: number,
) => void;

let cMatMul: MatMulCall | null = null;
let cTranspose: TransposeCall | null = null;

export function setupWasmMatMul(backend: unknown): void {
  const wasm = asWasmBackend(backend).wasm;
  const num = 'number' as const;
  const arr = 'array' as const;
  cMatMul = wasm.cwrap('BatchMatMul', null, [num, arr, num, num, arr, num, num, num, num]) as MatMulCall;
  cTranspose = wasm.cwrap('Transpose', null, [num, arr, num, num, num, arr, num]) as TransposeCall;
}

/** `batch` row-major rows×cols matrices stored back to back; `owned` is set for temporaries. */
interface MatrixStack {
  id: number;
  ptr: number;
  batch: number;
  rows: number;
  cols: number;
  owned?: tf.TensorInfo;
}

function stackOf(
  backend: WasmBackendInternals,
  info: tf.TensorInfo,
  batch: number,
  rows: number,
  cols: number,
): MatrixStack {
  const data = tensorData(backend, info);
  return { id: data.id, ptr: data.memoryOffset, batch, rows, cols };
}

function calls(): { matMul: MatMulCall; transpose: TransposeCall } {
  if (!cMatMul || !cTranspose) throw new Error('wasm BatchMatMul override used before its setup ran');
  return { matMul: cMatMul, transpose: cTranspose };
}

/** A vector's transpose has the same memory layout, so only real matrices are copied. */
function transposed(backend: WasmBackendInternals, s: MatrixStack): MatrixStack {
  if (s.rows === 1 || s.cols === 1)
    return { id: s.id, ptr: s.ptr, batch: s.batch, rows: s.cols, cols: s.rows };
  const out = backend.makeOutput([s.batch, s.cols, s.rows], 'float32');
  const data = tensorData(backend, out);
  const shape = s.batch === 1 ? [s.rows, s.cols] : [s.batch, s.rows, s.cols];
  const perm = s.batch === 1 ? [1, 0] : [0, 2, 1];
  const permBytes = shapeBytes(perm);
  calls().transpose(s.id, shapeBytes(shape), shape.length, CPP_FLOAT32, data.id, permBytes, perm.length);
  return { id: data.id, ptr: data.memoryOffset, batch: s.batch, rows: s.cols, cols: s.rows, owned: out };
}

/** For each flat index of the broadcast batch shape `outer`, the flat batch index into an operand. */
export function broadcastBatchIndex(outer: readonly number[], own: readonly number[]): number[] {
  const rank = outer.length;
  const padded = [...new Array<number>(rank - own.length).fill(1), ...own];
  const strides = new Array<number>(rank);
  let stride = 1;
  for (let d = rank - 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : stride;
    stride *= padded[d];
  }
  const total = tf.util.sizeFromShape(outer as number[]);
  const index = new Array<number>(total);
  const counter = new Array<number>(rank).fill(0);
  for (let i = 0; i < total; i++) {
    let flat = 0;
    for (let d = 0; d < rank; d++) flat += counter[d] * strides[d];
    index[i] = flat;
    for (let d = rank - 1; d >= 0; d--) {
      if (++counter[d] < outer[d]) break;
      counter[d] = 0;
    }
  }
  return index;
}

/** out[i] = left[leftIndex[i]] · right[rightIndex[i]] for i < batch, every product on the XNNPACK path. */
function multiply(
  backend: WasmBackendInternals,
  left: MatrixStack,
  right: MatrixStack,
  leftIndex: readonly number[],
  rightIndex: readonly number[],
  batch: number,
  out: { id: number; memoryOffset: number },
): void {
  const { matMul } = calls();
  const { rows, cols: inner } = left;
  const cols = right.cols;
  const rightShape = shapeBytes([1, inner, cols]);
  if (right.batch === 1 && left.batch === batch) {
    matMul(left.id, shapeBytes([1, batch * rows, inner]), 3, right.id, rightShape, 3, 0, 0, out.id);
    return;
  }
  const views: number[] = [];
  const view = (ptr: number, size: number): number => {
    const id = backend.dataIdNextNumber++;
    backend.wasm.tfjs.registerTensor(id, size, ptr);
    views.push(id);
    return id;
  };
  // One view per distinct right slice, so a broadcast right operand is packed once per call.
  const rightViews = new Map<number, number>();
  const leftShape = shapeBytes([1, rows, inner]);
  try {
    for (let i = 0; i < batch; i++) {
      const l = leftIndex[i];
      const r = rightIndex[i];
      const leftId =
        left.batch === 1 ? left.id : view(left.ptr + l * rows * inner * BYTES_PER_FLOAT, rows * inner);
      let rightId = right.batch === 1 ? right.id : rightViews.get(r);
      if (rightId === undefined) {
        rightId = view(right.ptr + r * inner * cols * BYTES_PER_FLOAT, inner * cols);
        rightViews.set(r, rightId);
      }
      const outId = view(out.memoryOffset + i * rows * cols * BYTES_PER_FLOAT, rows * cols);
      matMul(leftId, leftShape, 3, rightId, rightShape, 3, 0, 0, outId);
    }
  } finally {
    for (const id of views) backend.wasm.tfjs.disposeData(id);
  }
}

function release(backend: WasmBackendInternals, ...stacks: MatrixStack[]): void {
  for (const s of stacks) if (s.owned) backend.disposeData(s.owned.dataId);
}

function transposeCost(count: number, rows: number, cols: number): number {
  return rows === 1 || cols === 1 ? 0 : count * rows * cols;
}

/**
 * The override, falling back to `stock` for batches of tiny products: there one XNNPACK call per
 * matrix (~1.5 µs of operator set-up) costs more than the scalar loop (~1 ns per multiply-add).
 */
export function fastBatchMatMul(stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => batchMatMul(args, stock);
}

function batchMatMul(
  args: Parameters<tf.KernelFunc>[0],
  stock: tf.KernelFunc,
): tf.TensorInfo | tf.TensorInfo[] {
  const backend = asWasmBackend(args.backend);
  const { a, b } = args.inputs;
  const transposeA = Boolean(args.attrs?.transposeA);
  const transposeB = Boolean(args.attrs?.transposeB);
  if (!a || !b) throw new Error('BatchMatMul: inputs a and b are required');
  const { m, n, k, outShape, batch, batchA, batchB, outerA, outerB, outer } = matMulGeometry(
    a,
    b,
    transposeA,
    transposeB,
    'BatchMatMul on wasm',
  );
  // The stock kernel broadcasts only a batch of one, so only then may it take over.
  const stockBroadcasts = (batchA === batch || batchA === 1) && (batchB === batch || batchB === 1);
  if (batch > 1 && m * k * n < SMALL_PRODUCT_MACS && stockBroadcasts) return stock(args);

  if (batch * m * n === 0 || k === 0) {
    const out = backend.makeOutput([batch, m, n], 'float32');
    const size = batch * m * n;
    if (size > 0)
      new Float32Array(backend.wasm.HEAPU8.buffer, tensorData(backend, out).memoryOffset, size).fill(0);
    return { ...out, shape: outShape };
  }

  const storedA = transposeA ? stackOf(backend, a, batchA, k, m) : stackOf(backend, a, batchA, m, k);
  const storedB = transposeB ? stackOf(backend, b, batchB, n, k) : stackOf(backend, b, batchB, k, n);
  const indexA = broadcastBatchIndex(outer, outerA);
  const indexB = broadcastBatchIndex(outer, outerB);
  const packings = (rightBatch: number) => (rightBatch === 1 ? 1 : batch);

  const directCost =
    (transposeA ? transposeCost(batchA, k, m) : 0) +
    (transposeB ? transposeCost(batchB, n, k) : 0) +
    PACK_COST * k * n * packings(batchB);
  const swappedCost =
    (transposeB ? 0 : transposeCost(batchB, k, n)) +
    (transposeA ? 0 : transposeCost(batchA, m, k)) +
    transposeCost(batch, n, m) +
    PACK_COST * k * m * packings(batchA);

  if (!(transposeA || transposeB) || directCost <= swappedCost) {
    const left = transposeA ? transposed(backend, storedA) : storedA;
    const right = transposeB ? transposed(backend, storedB) : storedB;
    const out = backend.makeOutput([batch, m, n], 'float32');
    try {
      multiply(backend, left, right, indexA, indexB, batch, tensorData(backend, out));
    } finally {
      release(backend, left, right);
    }
    return { ...out, shape: outShape };
  }

  // C = (Bᵀ·Aᵀ)ᵀ, computed as a [batch, n, m] stack and then transposed.
  const left = transposeB ? storedB : transposed(backend, storedB);
  const right = transposeA ? storedA : transposed(backend, storedA);
  const flippedInfo = backend.makeOutput([batch, n, m], 'float32');
  const flippedData = tensorData(backend, flippedInfo);
  try {
    multiply(backend, left, right, indexB, indexA, batch, flippedData);
  } finally {
    release(backend, left, right);
  }
  const flipped: MatrixStack = {
    id: flippedData.id,
    ptr: flippedData.memoryOffset,
    batch,
    rows: n,
    cols: m,
    owned: flippedInfo,
  };
  const result = transposed(backend, flipped);
  if (!result.owned) return { ...flippedInfo, shape: outShape };
  release(backend, flipped);
  return { ...result.owned, shape: outShape };
}
