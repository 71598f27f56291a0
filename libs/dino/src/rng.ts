import seedrandom from 'seedrandom';

/**
 * Counter-based seeding: every random draw is a pure function of (seed, purpose, indices),
 * so a resumed or retried run replays the same numbers without carrying generator state.
 */
export type Rng = () => number;

export function rngFor(seed: number, purpose: string, ...indices: number[]): Rng {
  return seedrandom.alea(`${seed}|${purpose}|${indices.join(',')}`);
}

/** Standard normal via Box–Muller. */
export function normal(rng: Rng): number {
  let u = 0;
  while (u === 0) u = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** Truncated normal with absolute bounds [lo, hi] (spec §2.6: bounds are absolute, not in std units). */
export function truncatedNormal(rng: Rng, n: number, std: number, lo = -2, hi = 2): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let x: number;
    do x = normal(rng) * std;
    while (x < lo || x > hi);
    out[i] = x;
  }
  return out;
}

export function uniform(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng();
  return out;
}
