import seedrandom from 'seedrandom';

/**
 * Data order as a pure function of (seed, epoch, step): a retried or resumed training shard
 * recomputes exactly the batches it saw before, without carrying sampler state.
 */

/** Full batches per epoch; the incomplete tail is dropped (drop_last, spec §7.7). */
export function itersPerEpoch(n: number, batchSize: number): number {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  const iters = Math.floor(n / batchSize);
  if (iters < 1) throw new Error(`dataset of ${n} images is smaller than one batch of ${batchSize}`);
  return iters;
}

export function epochOfStep(n: number, batchSize: number, step: number): number {
  return Math.floor(step / itersPerEpoch(n, batchSize));
}

/** A permutation of 0..n−1, Fisher–Yates driven by a generator seeded with (seed, epoch). */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`permutation size must be a non-negative integer, got ${n}`);
  const rng = seedrandom.alea(`${seed}|perm|${epoch}`);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  return perm;
}

/** The dataset indices of global step `step`'s batch. */
export function batchIndices(n: number, batchSize: number, seed: number, step: number): number[] {
  if (!Number.isInteger(step) || step < 0)
    throw new Error(`step must be a non-negative integer, got ${step}`);
  const iters = itersPerEpoch(n, batchSize);
  const epoch = Math.floor(step / iters);
  const start = (step % iters) * batchSize;
  return Array.from(epochPermutation(n, seed, epoch).subarray(start, start + batchSize));
}
