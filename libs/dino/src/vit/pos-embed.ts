import * as tf from '@tensorflow/tfjs-core';
import { linearConstantInput } from '../layers/linear';
import { reshape } from '../layers/structural';

/**
 * Positional-table resampling for grids other than the table's (spec §2.3): PyTorch bicubic
 * (a = −0.75, align_corners = false, border indices clamped), separable, written as one
 * interpolation matrix so that resampling is a single differentiable NN matMul.
 */

export type PosEmbedInterpolation = 'dino-v1' | 'size';

const CUBIC_A = -0.75;

/** Cubic-convolution (Keys) weights for the 4 taps at offsets −1, 0, 1, 2 of a fractional position t. */
function cubicWeights(t: number): [number, number, number, number] {
  const near = (x: number) => ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
  const far = (x: number) => ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
  return [far(t + 1), near(t), near(1 - t), far(2 - t)];
}

/**
 * Source coordinate of output index i. `dino-v1` reproduces the released code, which asks
 * for a scale factor (out + 0.1)/in rather than a size, so PyTorch maps with 1/scale; `size`
 * is a plain resize to `out` (DINOv2).
 */
export function sourceCoordinate(
  i: number,
  inSize: number,
  outSize: number,
  mode: PosEmbedInterpolation,
): number {
  const step = mode === 'dino-v1' ? inSize / (outSize + 0.1) : inSize / outSize;
  return (i + 0.5) * step - 0.5;
}

/** 1-D bicubic resampling matrix R [out, in]: out = R · in. */
export function bicubicMatrix(inSize: number, outSize: number, mode: PosEmbedInterpolation): Float64Array {
  const r = new Float64Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const x = sourceCoordinate(i, inSize, outSize, mode);
    const x0 = Math.floor(x);
    const w = cubicWeights(x - x0);
    for (let k = 0; k < 4; k++) {
      const src = Math.min(Math.max(x0 - 1 + k, 0), inSize - 1);
      r[i * inSize + src] += w[k];
    }
  }
  return r;
}

/**
 * Interpolation matrix over a whole table [1 + g·g, ·] → [1 + outH·outW, ·]: the [CLS] row
 * passes through, patch rows (row-major grid) are resampled by kron(Ry, Rx).
 */
export function posEmbedMatrix(
  grid: number,
  outH: number,
  outW: number,
  mode: PosEmbedInterpolation,
): Float32Array {
  const ry = bicubicMatrix(grid, outH, mode);
  const rx = bicubicMatrix(grid, outW, mode);
  const cols = 1 + grid * grid;
  const m = new Float32Array((1 + outH * outW) * cols);
  m[0] = 1;
  for (let i = 0; i < outH; i++) {
    for (let j = 0; j < outW; j++) {
      const row = 1 + i * outW + j;
      for (let a = 0; a < grid; a++) {
        const wy = ry[i * grid + a];
        if (wy === 0) continue;
        for (let b = 0; b < grid; b++) m[row * cols + 1 + a * grid + b] = wy * rx[j * grid + b];
      }
    }
  }
  return m;
}

/**
 * Matrices are built once per (backend, grid, target, mode) and kept out of every tidy scope:
 * the same two or three grids recur every step.
 */
const matrixCache = new Map<string, tf.Tensor2D>();

function cachedMatrix(grid: number, outH: number, outW: number, mode: PosEmbedInterpolation): tf.Tensor2D {
  const key = `${tf.getBackend()}|${grid}|${outH}x${outW}|${mode}`;
  const hit = matrixCache.get(key);
  if (hit && !hit.isDisposed) return hit;
  const m = tf.keep(tf.tensor2d(posEmbedMatrix(grid, outH, outW, mode), [1 + outH * outW, 1 + grid * grid]));
  matrixCache.set(key, m);
  return m;
}

/** Frees the cached interpolation matrices (e.g. before switching backends for good). */
export function clearPosEmbedCache(): void {
  for (const m of matrixCache.values()) m.dispose();
  matrixCache.clear();
}

/**
 * The positional table `[1, 1 + g·g, D]` for a `gridH × gridW` patch grid, as rows
 * `[1 + gridH·gridW, D]` ([CLS] first). The table is returned unchanged (reshaped) when the grid
 * is its own square grid, as the reference does.
 */
export function posEmbedFor(
  table: tf.Tensor,
  gridH: number,
  gridW: number,
  mode: PosEmbedInterpolation = 'dino-v1',
): tf.Tensor2D {
  if (table.rank !== 3 || table.shape[0] !== 1) {
    throw new Error(`backbone.pos_embed must be [1, N+1, D], got [${table.shape}]`);
  }
  const [, rows, dim] = table.shape;
  const grid = Math.round(Math.sqrt(rows - 1));
  if (grid * grid !== rows - 1) {
    throw new Error(`backbone.pos_embed has ${rows - 1} patch rows, which is not a square grid`);
  }
  if (gridH === grid && gridW === grid) return reshape<tf.Rank.R2>(table, [rows, dim]);
  return tf.tidy(() =>
    linearConstantInput(cachedMatrix(grid, gridH, gridW, mode), reshape<tf.Rank.R2>(table, [rows, dim])),
  );
}
