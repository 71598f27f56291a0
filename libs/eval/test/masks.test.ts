import seedrandom from 'seedrandom';
import { massMask, maskArea, meanRows, upsampleNearest } from '../src/masks';

/** The fewest patches whose mass reaches t of the total, by enumerating every subset. */
function bruteForceMinimal(weights: number[], t: number): { size: number; bestMass: number } {
  const n = weights.length;
  const total = weights.reduce((a, b) => a + b, 0);
  let size = Infinity;
  let bestMass = -Infinity;
  for (let bits = 0; bits < 1 << n; bits++) {
    let mass = 0;
    let k = 0;
    for (let i = 0; i < n; i++)
      if (bits & (1 << i)) {
        mass += weights[i];
        k++;
      }
    if (mass < t * total - 1e-12) continue;
    if (k < size) {
      size = k;
      bestMass = mass;
    } else if (k === size) bestMass = Math.max(bestMass, mass);
  }
  return { size, bestMass };
}

const kept = (mask: Uint8Array, w: number[]) => w.reduce((s, v, i) => s + (mask[i] ? v : 0), 0);

describe('massMask', () => {
  it('keeps the largest weights down to the one crossing 1 − t (spec §13), by hand', () => {
    // Sorted ascending: 0.05 0.1 0.15 0.3 0.4 → cumsum 0.05 0.15 0.3 0.6 1.0; keep cumsum > 0.4.
    const w = [0.3, 0.05, 0.4, 0.15, 0.1];
    expect(Array.from(massMask(w, 0.6))).toEqual([1, 0, 1, 0, 0]);
    // t = 0.75: keep cumsum > 0.25 → also 0.15.
    expect(Array.from(massMask(w, 0.75))).toEqual([1, 0, 1, 1, 0]);
  });

  it('renormalises: the mask does not depend on the total (the [CLS] weight is excluded)', () => {
    const w = [0.3, 0.05, 0.4, 0.15, 0.1];
    expect(
      Array.from(
        massMask(
          w.map((v) => v * 0.37),
          0.6,
        ),
      ),
    ).toEqual(Array.from(massMask(w, 0.6)));
  });

  it('is the minimal set holding at least t of the mass (brute force over random small cases)', () => {
    const rng = seedrandom('mass');
    for (let trial = 0; trial < 300; trial++) {
      const n = 1 + Math.floor(rng() * 9);
      // Draws from a small pool of values (and zeros) so that ties are common.
      const pool = [0, rng(), rng(), rng(), rng()];
      const w = Array.from({ length: n }, () => pool[Math.floor(rng() * pool.length)]);
      const t = [0.1, 0.3, 0.5, 0.6, 0.9, 1][trial % 6];
      const mask = massMask(w, t);
      const total = w.reduce((a, b) => a + b, 0);
      if (total === 0) {
        expect(maskArea(mask)).toBe(0);
        continue;
      }
      const { size, bestMass } = bruteForceMinimal(w, t);
      const count = mask.reduce((a, b) => a + b, 0);
      // Zero weights carry no mass, so a minimal set never needs them.
      expect(count).toBe(size);
      expect(kept(mask, w)).toBeCloseTo(bestMass, 9);
      expect(kept(mask, w)).toBeGreaterThanOrEqual(t * total - 1e-9);
    }
  });

  it('breaks ties deterministically in favour of the lower index', () => {
    // Four equal weights, t = 0.5 → two are needed; the first two in row-major order win.
    expect(Array.from(massMask([0.25, 0.25, 0.25, 0.25], 0.5))).toEqual([1, 1, 0, 0]);
    expect(Array.from(massMask([0.1, 0.3, 0.3, 0.3], 0.5))).toEqual([0, 1, 1, 0]);
    // Same input, same output.
    const w = [0.2, 0.2, 0.1, 0.2, 0.3];
    expect(Array.from(massMask(w, 0.6))).toEqual(Array.from(massMask(w, 0.6)));
  });

  it('handles the extremes: t = 0 keeps nothing, t = 1 keeps every patch with mass', () => {
    const w = [0.5, 0, 0.25, 0.25];
    expect(Array.from(massMask(w, 0))).toEqual([0, 0, 0, 0]);
    expect(Array.from(massMask(w, 1))).toEqual([1, 0, 1, 1]);
    expect(Array.from(massMask([0, 0, 0], 0.6))).toEqual([0, 0, 0]);
  });

  it('rejects invalid inputs by name', () => {
    expect(() => massMask([0.5, Number.NaN], 0.6)).toThrow(/weight 1/);
    expect(() => massMask([0.5, -0.1], 0.6)).toThrow(/weight 1/);
    expect(() => massMask([1], 1.5)).toThrow(/threshold/);
  });
});

describe('upsampling and averaging', () => {
  it('repeats each patch as a factor × factor block', () => {
    const up = upsampleNearest(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3, 2);
    expect(up).toBeInstanceOf(Float32Array);
    expect(up.length).toBe(4 * 6);
    expect(Array.from(up.subarray(0, 6))).toEqual([1, 1, 2, 2, 3, 3]);
    expect(Array.from(up.subarray(6, 12))).toEqual([1, 1, 2, 2, 3, 3]);
    expect(Array.from(up.subarray(18, 24))).toEqual([4, 4, 5, 5, 6, 6]);
    const mask = upsampleNearest(Uint8Array.from([1, 0, 0, 1]), 2, 2, 4);
    expect(mask).toBeInstanceOf(Uint8Array);
    expect(mask.length).toBe(64);
    expect(maskArea(mask)).toBe(0.5);
    expect(() => upsampleNearest(new Float32Array(5), 2, 3, 2)).toThrow(/2×3/);
    expect(() => upsampleNearest(new Float32Array(6), 2, 3, 1.5)).toThrow(/factor/);
  });

  it('averages rows', () => {
    expect(Array.from(meanRows([1, 2, 3, 5, 6, 7], 2, 3))).toEqual([3, 4, 5]);
  });
});
