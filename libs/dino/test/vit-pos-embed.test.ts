import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import {
  bicubicMatrix,
  posEmbedFor,
  posEmbedMatrix,
  sourceCoordinate,
  type PosEmbedInterpolation,
} from '../src/vit/pos-embed';
import {
  compareWithReference,
  expectClose,
  matmul,
  maxAbsDiff,
  randomInput,
  toTensor,
} from './layers-reference';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/**
 * Independent 1-D bicubic resampling, written from the kernel definition: the weight of source
 * sample j for a real position x is W(x − j), W being Keys' cubic with a = −0.75; samples
 * outside [0, n) take the value of the nearest border sample.
 */
function referenceResample(input: number[], outSize: number, mode: PosEmbedInterpolation): number[] {
  const a = -0.75;
  const kernel = (d: number) => {
    const s = Math.abs(d);
    if (s <= 1) return (a + 2) * s ** 3 - (a + 3) * s ** 2 + 1;
    if (s < 2) return a * s ** 3 - 5 * a * s ** 2 + 8 * a * s - 4 * a;
    return 0;
  };
  const n = input.length;
  const scale = mode === 'size' ? n / outSize : n / (outSize + 0.1);
  return Array.from({ length: outSize }, (_, i) => {
    const x = (i + 0.5) * scale - 0.5;
    let v = 0;
    for (let j = Math.floor(x) - 1; j <= Math.floor(x) + 2; j++)
      v += kernel(x - j) * input[Math.min(Math.max(j, 0), n - 1)];
    return v;
  });
}

function matrixRows(m: Float64Array, cols: number): number[][] {
  return Array.from({ length: m.length / cols }, (_, i) => Array.from(m.subarray(i * cols, (i + 1) * cols)));
}

function expectRowsClose(got: number[][], want: number[][], digits = 6): void {
  expect(got.length).toBe(want.length);
  got.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i][j], digits)));
}

describe('bicubic weights (PyTorch semantics, a = −0.75, align_corners = false)', () => {
  it('4 → 2 by size: hand-computed weights with a clamped border', () => {
    // x = 0.5 and 2.5; taps at t = 0.5 weigh (−0.09375, 0.59375, 0.59375, −0.09375).
    expectRowsClose(matrixRows(bicubicMatrix(4, 2, 'size'), 4), [
      [0.5, 0.59375, -0.09375, 0],
      [0, -0.09375, 0.59375, 0.5],
    ]);
  });

  it('2 → 3 by size: hand-computed weights (313/288, −25/288 at the borders)', () => {
    expectRowsClose(matrixRows(bicubicMatrix(2, 3, 'size'), 2), [
      [313 / 288, -25 / 288],
      [0.5, 0.5],
      [-25 / 288, 313 / 288],
    ]);
  });

  it.each([
    [14, 6, 'dino-v1'],
    [14, 6, 'size'],
    [4, 7, 'dino-v1'],
    [5, 3, 'size'],
    [3, 3, 'dino-v1'],
  ] as const)('%i → %i (%s) matches the kernel-definition reference', (n, out, mode) => {
    const r = bicubicMatrix(n, out, mode);
    for (let j = 0; j < n; j++) {
      const basis = Array.from({ length: n }, (_, k) => (k === j ? 1 : 0));
      const column = referenceResample(basis, out, mode);
      column.forEach((v, i) => expect(r[i * n + j]).toBeCloseTo(v, 10));
    }
    matrixRows(r, n).forEach((row) => expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 12));
  });

  it('dino-v1 maps output i to (i + 0.5)·g/(h0 + 0.1) − 0.5, size mode to (i + 0.5)·g/h0 − 0.5', () => {
    expect(sourceCoordinate(2, 14, 6, 'dino-v1')).toBeCloseTo((2.5 * 14) / 6.1 - 0.5, 12);
    expect(sourceCoordinate(2, 14, 6, 'size')).toBeCloseTo((2.5 * 14) / 6 - 0.5, 12);
    // Even at the table's own size the v1 mapping is not the identity; only posEmbedFor short-cuts it.
    expect(sourceCoordinate(0, 14, 14, 'dino-v1')).not.toBeCloseTo(0, 3);
  });
});

describe('posEmbedFor', () => {
  const grid = 4;
  const dim = 3;
  const tableInput = randomInput([1, grid * grid + 1, dim], 40);

  it('is the table itself at the native grid', () => {
    const table = toTensor(tableInput);
    for (const mode of ['dino-v1', 'size'] as const) {
      const out = posEmbedFor(table, grid, grid, mode);
      expect(out.shape).toEqual([grid * grid + 1, dim]);
      expect(maxAbsDiff(out.dataSync(), tableInput.data)).toBe(0);
      out.dispose();
    }
    table.dispose();
  });

  it.each([
    [2, 2],
    [2, 3],
    [6, 5],
  ])('resamples to a %i×%i grid separably, keeping the [CLS] row', (outH, outW) => {
    const table = toTensor(tableInput);
    const out = posEmbedFor(table, outH, outW, 'dino-v1');
    expect(out.shape).toEqual([outH * outW + 1, dim]);
    const got = out.arraySync();
    const t = tableInput.data;
    for (let c = 0; c < dim; c++) {
      expect(got[0][c]).toBeCloseTo(t[c], 6);
      // Columns first along x for every source row, then along y.
      const alongX = Array.from({ length: grid }, (_, a) =>
        referenceResample(
          Array.from({ length: grid }, (_, b) => t[(1 + a * grid + b) * dim + c]),
          outW,
          'dino-v1',
        ),
      );
      for (let j = 0; j < outW; j++) {
        const alongY = referenceResample(
          alongX.map((row) => row[j]),
          outH,
          'dino-v1',
        );
        alongY.forEach((v, i) => expect(got[1 + i * outW + j][c]).toBeCloseTo(v, 5));
      }
    }
    tf.dispose([table, out]);
  });

  it('passes gradients to the table (Mᵀ·dy)', () => {
    const m = Float64Array.from(posEmbedMatrix(grid, 2, 3, 'dino-v1'));
    expectClose(
      compareWithReference(
        (table) => posEmbedFor(table, 2, 3, 'dino-v1'),
        (table) => matmul(m, table, 7, grid * grid + 1, dim),
        [tableInput],
      ),
    );
  });

  it('builds each interpolation matrix once', () => {
    const table = toTensor(tableInput);
    tf.dispose(posEmbedFor(table, 3, 3, 'size'));
    const before = tf.memory().numTensors;
    tf.dispose(posEmbedFor(table, 3, 3, 'size'));
    expect(tf.memory().numTensors).toBe(before);
    table.dispose();
  });

  it('rejects a table that is not a square grid', () => {
    const bad = tf.zeros([1, 7, 3]);
    expect(() => posEmbedFor(bad, 2, 2)).toThrow(/pos_embed.*square/);
    bad.dispose();
  });
});
