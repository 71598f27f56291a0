import * as path from 'node:path';

/**
 * Loader for the OpenBLAS addon built by this package's install script (`node-gyp rebuild`).
 * The build is allowed to fail (no compiler, no OpenBLAS), so loading never throws: it says
 * whether the addon is there and, if not, why.
 *
 * All matrices are row-major Float32Arrays addressed by element offset and leading dimension;
 * the addon checks every matrix against its array's bounds and throws a RangeError otherwise.
 */

/** Elementwise functions of `unary`. exp: Cephes polynomial, ≤ 1 ulp-ish; erf: Abramowitz & Stegun 7.1.26, as tfjs computes it. */
export const UNARY_CODES = { exp: 0, erf: 1 } as const;
export type UnaryOp = keyof typeof UNARY_CODES;

/** Activation codes understood by `biasActivation`, named as tfjs names fused activations. */
export const ACTIVATION_CODES = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4, elu: 5 } as const;
export type FusedActivation = keyof typeof ACTIVATION_CODES;

export interface NativeBlasInfo {
  library: 'openblas';
  /** The kernel family OpenBLAS selected for this CPU (e.g. Cooperlake, SkylakeX, Haswell). */
  corename: string;
  config: string;
}

export interface NativeBlas {
  /** C ← alpha·op(A)·op(B) + beta·C with op(A) m×k, op(B) k×n, C m×n. */
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    aOffset: number,
    lda: number,
    b: Float32Array,
    bOffset: number,
    ldb: number,
    beta: number,
    c: Float32Array,
    cOffset: number,
    ldc: number,
  ): void;
  /** One `sgemm` per entry of the offset lists (equal lengths); a repeated offset broadcasts an operand. */
  sgemmBatch(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Float32Array,
    aOffsets: Uint32Array,
    lda: number,
    b: Float32Array,
    bOffsets: Uint32Array,
    ldb: number,
    beta: number,
    c: Float32Array,
    cOffsets: Uint32Array,
    ldc: number,
  ): void;
  /** In place on a dense rows×cols block: c[i][j] ← act(c[i][j] + bias[j % biasSize]); biasSize is 1 or cols. */
  biasActivation(
    c: Float32Array,
    cOffset: number,
    rows: number,
    cols: number,
    bias: Float32Array | null,
    biasOffset: number,
    biasSize: number,
    activation: number,
    alpha: number,
  ): void;
  /** out[outOffset + i] = f(x[xOffset + i]) for i < size (vectorised); x and out must not overlap. */
  unary(
    op: number,
    x: Float32Array,
    xOffset: number,
    out: Float32Array,
    outOffset: number,
    size: number,
  ): void;
  /**
   * out[o][c][r][k] = x[o][r][c][k] for shapes [outer, rows, cols, inner] → [outer, cols, rows, inner]:
   * a transpose that swaps two adjacent groups of axes. x and out must not overlap.
   */
  swapAxes(
    x: Float32Array,
    xOffset: number,
    out: Float32Array,
    outOffset: number,
    outer: number,
    rows: number,
    cols: number,
    inner: number,
  ): void;
  /** out[outOffset + j] = Σ_i x[xOffset + i·cols + j], rows added in order; x and out must not overlap. */
  columnSums(
    x: Float32Array,
    xOffset: number,
    out: Float32Array,
    outOffset: number,
    rows: number,
    cols: number,
  ): void;
  /** OpenBLAS's thread count is per process: every worker thread shares it. */
  setThreads(threads: number): void;
  threads(): number;
  info(): NativeBlasInfo;
}

export type NativeBlasLoad =
  { blas: NativeBlas; path: string } | { blas: null; path: string; reason: string };

/** Where the install script leaves the addon, relative to both src/ and dist/. */
export const ADDON_PATH = path.join(__dirname, '..', 'build', 'Release', 'dinoq_native_blas.node');

let cached: NativeBlasLoad | null = null;

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

/** Loads the addon once per thread (each worker thread gets its own instance of the module). */
export function loadNativeBlas(): NativeBlasLoad {
  if (cached) return cached;
  try {
    const blas = require(ADDON_PATH) as NativeBlas;
    cached = { blas, path: ADDON_PATH };
  } catch (e) {
    cached = { blas: null, path: ADDON_PATH, reason: `cannot load ${ADDON_PATH}: ${firstLine(e)}` };
  }
  return cached;
}
