import { ACTIVATION_CODES, UNARY_CODES, loadNativeBlas, type NativeBlas } from '../src/index';

const loaded = loadNativeBlas();

function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/** Plain triple loop on row-major matrices with offsets and leading dimensions. */
function referenceGemm(
  tA: boolean,
  tB: boolean,
  m: number,
  n: number,
  k: number,
  alpha: number,
  a: Float32Array,
  aOff: number,
  lda: number,
  b: Float32Array,
  bOff: number,
  ldb: number,
  beta: number,
  c: Float32Array,
  cOff: number,
  ldc: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        const av = tA ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
        const bv = tB ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
        acc += av * bv;
      }
      const at = cOff + i * ldc + j;
      c[at] = alpha * acc + (beta === 0 ? 0 : beta * c[at]);
    }
  }
}

function maxAbsDiff(x: Float32Array, y: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  return worst;
}

if (!loaded.blas) {
  describe('native BLAS addon (not built here)', () => {
    it('explains why it is missing, and CI always builds it', () => {
      expect(loaded.reason).toMatch(/cannot load .*dinoq_native_blas\.node/);
      expect(process.env.CI).toBeUndefined();
    });
  });
} else {
  const blas: NativeBlas = loaded.blas;

  describe('native BLAS addon', () => {
    it('names the OpenBLAS kernels it picked and takes a thread count', () => {
      const info = blas.info();
      expect(info.library).toBe('openblas');
      expect(info.corename.length).toBeGreaterThan(0);
      const before = blas.threads();
      blas.setThreads(1);
      expect(blas.threads()).toBe(1);
      blas.setThreads(before);
      expect(() => blas.setThreads(0)).toThrow(/threads must be a positive integer/);
    });

    const cases: Array<[boolean, boolean, number, number, number]> = [
      [false, false, 7, 5, 3],
      [false, true, 6, 9, 4],
      [true, false, 5, 8, 11],
      [true, true, 4, 3, 6],
      [false, false, 33, 17, 65],
    ];
    it.each(cases)(
      'sgemm transA=%s transB=%s m=%d n=%d k=%d with offsets, padding and beta',
      (tA, tB, m, n, k) => {
        // Leading dimensions wider than the matrices and non-zero offsets, as on a shared heap.
        const lda = (tA ? m : k) + 2;
        const ldb = (tB ? k : n) + 1;
        const ldc = n + 3;
        const aOff = 5;
        const bOff = 2;
        const cOff = 7;
        const a = seeded(aOff + (tA ? k : m) * lda, 1);
        const b = seeded(bOff + (tB ? n : k) * ldb, 2);
        const c = seeded(cOff + m * ldc, 3);
        const expected = c.slice();
        referenceGemm(tA, tB, m, n, k, 0.5, a, aOff, lda, b, bOff, ldb, 2, expected, cOff, ldc);
        blas.sgemm(tA, tB, m, n, k, 0.5, a, aOff, lda, b, bOff, ldb, 2, c, cOff, ldc);
        expect(maxAbsDiff(c, expected)).toBeLessThan(1e-5);
      },
    );

    it('sgemmBatch runs one product per offset triple, broadcasting repeated offsets', () => {
      const [m, n, k] = [4, 5, 6];
      const a = seeded(3 * m * k, 4);
      const b = seeded(k * n, 5);
      const c = new Float32Array(3 * m * n);
      const expected = new Float32Array(3 * m * n);
      const aOffsets = new Uint32Array([0, m * k, 2 * m * k]);
      const bOffsets = new Uint32Array([0, 0, 0]);
      const cOffsets = new Uint32Array([0, m * n, 2 * m * n]);
      for (let i = 0; i < 3; i++) {
        referenceGemm(false, false, m, n, k, 1, a, aOffsets[i], k, b, 0, n, 0, expected, cOffsets[i], n);
      }
      blas.sgemmBatch(false, false, m, n, k, 1, a, aOffsets, k, b, bOffsets, n, 0, c, cOffsets, n);
      expect(maxAbsDiff(c, expected)).toBeLessThan(1e-5);
    });

    it('refuses operands that do not fit their arrays, before writing anything', () => {
      const a = new Float32Array(12);
      const b = new Float32Array(12);
      const c = new Float32Array(9).fill(7);
      expect(() => blas.sgemm(false, false, 3, 3, 4, 1, a, 1, 4, b, 0, 3, 0, c, 0, 3)).toThrow(
        /A .* exceeds/,
      );
      expect(() => blas.sgemm(false, false, 3, 3, 4, 1, a, 0, 4, b, 0, 3, 0, c, 1, 3)).toThrow(
        /C .* exceeds/,
      );
      expect(() => blas.sgemm(false, false, 3, 3, 4, 1, a, 0, 3, b, 0, 3, 0, c, 0, 3)).toThrow(
        /A .* exceeds/,
      );
      expect(() => blas.sgemm(false, false, 3, 3, 4, 1, a, -1, 4, b, 0, 3, 0, c, 0, 3)).toThrow(/aOffset/);
      expect(() =>
        blas.sgemmBatch(
          false,
          false,
          3,
          3,
          4,
          1,
          a,
          new Uint32Array([0, 0]),
          4,
          b,
          new Uint32Array([0, 0]),
          3,
          0,
          c,
          new Uint32Array([0, 1]),
          3,
        ),
      ).toThrow(/C .* exceeds/);
      expect(() =>
        blas.sgemm(
          false,
          false,
          3,
          3,
          4,
          1,
          a as unknown as Float32Array,
          0,
          4,
          [] as unknown as Float32Array,
          0,
          3,
          0,
          c,
          0,
          3,
        ),
      ).toThrow(/Float32Arrays/);
      expect([...c]).toEqual(new Array(9).fill(7));
    });

    it('unary exp and erf match their double-precision definitions, NaN and infinities included', () => {
      const n = 4099; // not a multiple of any vector width
      const x = new Float32Array(n + 3);
      for (let i = 0; i < n; i++) x[3 + i] = -12 + (24 * i) / n;
      x.set([NaN, Infinity, -Infinity, 95, -95, 88.5, -87.5, 0], 3 + n - 8);
      const out = new Float32Array(n + 1);
      // The tfjs formula for erf (Abramowitz & Stegun 7.1.26), in double precision.
      const erf = (v: number) => {
        const a = Math.abs(v);
        const t = 1 / (1 + 0.3275911 * a);
        const poly =
          ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
        return Math.sign(v) * (1 - poly * Math.exp(-a * a));
      };
      for (const [op, f] of [
        ['exp', Math.exp],
        ['erf', erf],
      ] as const) {
        blas.unary(UNARY_CODES[op], x, 3, out, 1, n);
        for (let i = 0; i < n; i++) {
          const want = Math.fround(f(x[3 + i]));
          const got = out[1 + i];
          if (Number.isNaN(want)) expect(got).toBeNaN();
          else if (!Number.isFinite(want)) expect(got).toBe(want);
          else if (Math.abs(got - want) > 4e-7 * Math.max(1, Math.abs(want)) + 1e-37) {
            throw new Error(`${op}(${x[3 + i]}) = ${got}, expected ${want}`);
          }
        }
      }
      expect(() => blas.unary(UNARY_CODES.exp, x, 0, x, 2, 8)).toThrow(/overlap/);
      expect(() => blas.unary(UNARY_CODES.exp, x, 0, out, 2, n)).toThrow(/out .* exceeds/);
      expect(() => blas.unary(7, x, 0, out, 0, 1)).toThrow(/unknown unary op/);
    });

    it('swapAxes swaps two adjacent axis groups, tiles and remainders included', () => {
      for (const [outer, rows, cols, inner] of [
        [1, 37, 21, 1],
        [3, 9, 17, 1],
        [2, 5, 3, 4],
      ]) {
        const size = outer * rows * cols * inner;
        const x = seeded(size + 2, 9);
        const out = new Float32Array(size + 1);
        blas.swapAxes(x, 2, out, 1, outer, rows, cols, inner);
        for (let o = 0; o < outer; o++)
          for (let r = 0; r < rows; r++)
            for (let c = 0; c < cols; c++)
              for (let k = 0; k < inner; k++) {
                const got = out[1 + ((o * cols + c) * rows + r) * inner + k];
                expect(got).toBe(x[2 + ((o * rows + r) * cols + c) * inner + k]);
              }
      }
      const x = new Float32Array(16);
      expect(() => blas.swapAxes(x, 0, x, 2, 1, 2, 2, 1)).toThrow(/overlap/);
      expect(() => blas.swapAxes(x, 1, new Float32Array(16), 0, 1, 4, 4, 1)).toThrow(/x .* exceeds/);
    });

    it('columnSums adds rows in order', () => {
      const [rows, cols] = [37, 19];
      const x = seeded(3 + rows * cols, 12);
      const out = new Float32Array(cols + 1).fill(99);
      blas.columnSums(x, 3, out, 1, rows, cols);
      expect(out[0]).toBe(99);
      for (let j = 0; j < cols; j++) {
        let acc = 0;
        for (let i = 0; i < rows; i++) acc = Math.fround(acc + x[3 + i * cols + j]);
        expect(out[1 + j]).toBe(acc);
      }
      expect(() => blas.columnSums(x, 0, x, 5, rows, cols)).toThrow(/overlap/);
      expect(() => blas.columnSums(x, 4, out, 0, rows, cols)).toThrow(/x .* exceeds/);
    });

    it('biasActivation adds a per-column bias and applies each fused activation', () => {
      const x = new Float32Array([-8, -0.5, 0, 0.5, 3, 8]);
      const bias = new Float32Array([9, 0.25, -0.25]);
      const withBias = x.map((v, i) => v + bias[i % 3]);
      const expected: Record<string, (v: number) => number> = {
        linear: (v) => v,
        relu: (v) => Math.max(v, 0),
        relu6: (v) => Math.min(Math.max(v, 0), 6),
        leakyrelu: (v) => (v < 0 ? 0.1 * v : v),
        sigmoid: (v) => 1 / (1 + Math.exp(-v)),
        elu: (v) => (v < 0 ? Math.expm1(v) : v),
      };
      for (const [name, code] of Object.entries(ACTIVATION_CODES)) {
        const c = new Float32Array(2 + x.length);
        c.set(x, 2);
        blas.biasActivation(c, 2, 2, 3, bias, 0, 3, code, 0.1);
        const want = Float32Array.from(withBias, expected[name]);
        expect(maxAbsDiff(c.subarray(2), want)).toBeLessThan(1e-6);
      }
      const scalarBias = new Float32Array([1]);
      const c = x.slice();
      blas.biasActivation(c, 0, 2, 3, scalarBias, 0, 1, ACTIVATION_CODES.relu, 0);
      expect([...c]).toEqual([0, 0.5, 1, 1.5, 4, 9]);
      const plain = x.slice();
      blas.biasActivation(plain, 0, 2, 3, null, 0, 0, ACTIVATION_CODES.relu, 0);
      expect([...plain]).toEqual([0, 0, 0, 0.5, 3, 8]);
      expect(() => blas.biasActivation(x.slice(), 0, 2, 3, bias, 0, 2, 0, 0)).toThrow(/biasSize/);
      expect(() => blas.biasActivation(x.slice(), 1, 2, 3, null, 0, 0, 0, 0)).toThrow(/exceeds/);
      expect(() => blas.biasActivation(x.slice(), 0, 2, 3, null, 0, 0, 9, 0)).toThrow(/activation/);
    });
  });
}
