import * as tf from '@tensorflow/tfjs-core';
import { matMulGeometry, type MatMulGeometry } from './matmul-geometry';
import { asWasmBackend, type WasmBackendInternals } from './wasm-internals';
import { floatOffset, heapFloats } from './native-heap';
import { broadcastBatchIndex } from './wasm-matmul';
import type { NativeBlasBinding } from './native-binding';

/**
 * `BatchMatMul` and `_FusedMatMul` for the wasm backend computed by OpenBLAS on the wasm heap.
 *
 * The operands and the output are addressed in place through one Float32Array view of the wasm
 * memory, so nothing is copied in or out. Transpose flags and batches go straight to sgemm (no
 * materialised transposes, no per-call packing cache to miss), and a batched left operand times
 * a shared right one is a single tall product. Tiny products stay on the previous kernel, whose
 * per-call cost is lower than the trip through N-API.
 */

/** Below this many multiply-adds in the whole call, the previous kernel is at least as fast. */
export const NATIVE_MIN_MACS = 4096;

/** tfjs's fused activation names → the addon's codes; anything else (prelu) uses the previous kernel. */
const ACTIVATION_CODES: Readonly<Record<string, number>> = {
  linear: 0,
  relu: 1,
  relu6: 2,
  leakyrelu: 3,
  sigmoid: 4,
  elu: 5,
};

type KernelArgs = Parameters<tf.KernelFunc>[0];

type Product = MatMulGeometry;

function planProduct(a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean): Product {
  return matMulGeometry(a, b, transposeA, transposeB, 'matMul on wasm with native BLAS');
}

function macs(p: Product): number {
  return p.batch * p.m * p.n * p.k;
}

/** Allocates the [batch, m, n] output and fills it with op(A)·op(B); returns it with the broadcast shape. */
function multiply(
  backend: WasmBackendInternals,
  blas: NativeBlasBinding,
  p: Product,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
): { out: tf.TensorInfo; offset: number } {
  const { transposeA, transposeB, m, n, k, batch, batchA, batchB } = p;
  // Allocate before taking any heap view: an allocation may grow the memory.
  const out = backend.makeOutput([batch, m, n], 'float32');
  const result = { ...out, shape: p.outShape };
  const size = batch * m * n;
  if (size === 0) return { out: result, offset: 0 };
  const heap = heapFloats(backend);
  const c = floatOffset(backend, out);
  if (k === 0) {
    heap.fill(0, c, c + size);
    return { out: result, offset: c };
  }
  const aBase = floatOffset(backend, a);
  const bBase = floatOffset(backend, b);
  const lda = transposeA ? m : k;
  const ldb = transposeB ? k : n;
  if (batch === 1) {
    blas.sgemm(transposeA, transposeB, m, n, k, 1, heap, aBase, lda, heap, bBase, ldb, 0, heap, c, n);
  } else if (batchB === 1 && batchA === batch && !transposeA) {
    // Stacked left matrices share the right one: one [batch·m, k] product.
    blas.sgemm(false, transposeB, batch * m, n, k, 1, heap, aBase, k, heap, bBase, ldb, 0, heap, c, n);
  } else {
    const indexA = broadcastBatchIndex(p.outer, p.outerA);
    const indexB = broadcastBatchIndex(p.outer, p.outerB);
    const aOffsets = new Uint32Array(batch);
    const bOffsets = new Uint32Array(batch);
    const cOffsets = new Uint32Array(batch);
    for (let i = 0; i < batch; i++) {
      aOffsets[i] = aBase + indexA[i] * m * k;
      bOffsets[i] = bBase + indexB[i] * k * n;
      cOffsets[i] = c + i * m * n;
    }
    blas.sgemmBatch(
      transposeA,
      transposeB,
      m,
      n,
      k,
      1,
      heap,
      aOffsets,
      lda,
      heap,
      bOffsets,
      ldb,
      0,
      heap,
      cOffsets,
      n,
    );
  }
  return { out: result, offset: c };
}

export function nativeBatchMatMul(blas: NativeBlasBinding, previous: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b } = args.inputs;
    if (!a || !b) throw new Error('BatchMatMul: inputs a and b are required');
    const p = planProduct(a, b, Boolean(args.attrs?.transposeA), Boolean(args.attrs?.transposeB));
    if (macs(p) < NATIVE_MIN_MACS) return previous(args);
    return multiply(asWasmBackend(args.backend), blas, p, a, b).out;
  };
}

/** act(op(A)·op(B) + bias) with a rank-1 bias of n (or 1) values; prelu goes to the previous kernel. */
export function nativeFusedMatMul(blas: NativeBlasBinding, previous: tf.KernelFunc): tf.KernelFunc {
  return (args: KernelArgs) => {
    const { a, b, bias, preluActivationWeights } = args.inputs;
    if (!a || !b) throw new Error('_FusedMatMul: inputs a and b are required');
    const activation = String(args.attrs?.activation ?? 'linear');
    const code = ACTIVATION_CODES[activation];
    const p = planProduct(a, b, Boolean(args.attrs?.transposeA), Boolean(args.attrs?.transposeB));
    const plainBias =
      !bias ||
      (bias.dtype === 'float32' && bias.shape.length === 1 && (bias.shape[0] === p.n || bias.shape[0] === 1));
    if (code === undefined || preluActivationWeights || !plainBias || macs(p) < NATIVE_MIN_MACS) {
      return previous(args);
    }
    const backend = asWasmBackend(args.backend);
    const { out, offset } = multiply(backend, blas, p, a, b);
    const rows = p.batch * p.m;
    if ((bias || code !== 0) && rows * p.n > 0) {
      const heap = heapFloats(backend);
      const alpha = Number(args.attrs?.leakyreluAlpha ?? 0) || 0;
      blas.biasActivation(
        heap,
        offset,
        rows,
        p.n,
        bias ? heap : null,
        bias ? floatOffset(backend, bias) : 0,
        bias ? bias.shape[0] : 0,
        code,
        alpha,
      );
    }
    return out;
  };
}
