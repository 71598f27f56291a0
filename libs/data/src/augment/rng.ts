import seedrandom from 'seedrandom';

/** Uniform in [0, 1). */
export type Rng = () => number;

/**
 * Every augmentation draw for one image comes from a generator keyed by (seed, epoch, image
 * index), so a batch can be rebuilt anywhere, in any order, bit for bit.
 */
export function augmentRng(seed: number, epoch: number, index: number): Rng {
  return seedrandom.alea(`${seed}|aug|${epoch}|${index}`);
}

export function uniform(rng: Rng, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}
