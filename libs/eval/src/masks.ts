/**
 * Attention masks of the reference visualisation (spec §13): per head, the smallest set of
 * patches that holds a fraction `threshold` of the [CLS]→patch attention mass.
 */

/** The paper's figures keep 60 % of the mass. */
export const DEFAULT_MASS_THRESHOLD = 0.6;

/**
 * 1 for the patches kept, 0 elsewhere. The reference procedure: sort the weights ascending,
 * renormalise to sum 1, cumulative sum, keep the patches whose cumulative value exceeds 1 − t.
 * That keeps the largest weights down to (and including) the one that crosses the boundary,
 * i.e. the fewest patches whose mass reaches t.
 *
 * Instead of dividing by the total, the cumulative sum is compared with (1 − t)·total, summed in
 * the same order, so the last cumulative value equals the total exactly and t = 0 keeps nothing.
 *
 * Ties: equal weights are ordered by decreasing index in the ascending sort, so when only some
 * of several equal weights are needed, the lowest indices (first in row-major order) are kept.
 */
export function massMask(weights: ArrayLike<number>, threshold = DEFAULT_MASS_THRESHOLD): Uint8Array {
  if (!(threshold >= 0 && threshold <= 1))
    throw new Error(`massMask: threshold must be in [0, 1], got ${threshold}`);
  const n = weights.length;
  for (let i = 0; i < n; i++) {
    if (!(weights[i] >= 0))
      throw new Error(`massMask: weight ${i} is ${weights[i]}, expected a finite value ≥ 0`);
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => weights[a] - weights[b] || b - a);
  let total = 0;
  for (const i of order) total += weights[i];
  const mask = new Uint8Array(n);
  if (total === 0) return mask;
  const boundary = (1 - threshold) * total;
  let cumulative = 0;
  for (const i of order) {
    cumulative += weights[i];
    if (cumulative > boundary) mask[i] = 1;
  }
  return mask;
}

/** Mean over the leading axis of `[rows, n]` data (e.g. the heads of one image's maps). */
export function meanRows(data: ArrayLike<number>, rows: number, n: number): Float32Array {
  if (data.length !== rows * n) throw new Error(`meanRows: ${data.length} values, expected ${rows}×${n}`);
  const out = new Float32Array(n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[j] += data[r * n + j];
  for (let j = 0; j < n; j++) out[j] /= rows;
  return out;
}

/**
 * Nearest-neighbour upsampling of a `[height, width]` map by an integer factor (the patch size,
 * as the reference does, so every patch becomes a factor×factor block).
 */
export function upsampleNearest<T extends Float32Array | Uint8Array>(
  map: T,
  height: number,
  width: number,
  factor: number,
): T {
  if (map.length !== height * width)
    throw new Error(`upsampleNearest: ${map.length} values for a ${height}×${width} map`);
  if (!Number.isInteger(factor) || factor < 1)
    throw new Error(`upsampleNearest: factor must be a positive integer, got ${factor}`);
  const outWidth = width * factor;
  const out = new (map.constructor as { new (n: number): T })(height * factor * outWidth);
  for (let y = 0; y < height * factor; y++) {
    const srcRow = Math.floor(y / factor) * width;
    for (let x = 0; x < outWidth; x++) out[y * outWidth + x] = map[srcRow + Math.floor(x / factor)];
  }
  return out;
}

/** Fraction of the mask that is on. */
export function maskArea(mask: ArrayLike<number>): number {
  let on = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) on++;
  return mask.length === 0 ? 0 : on / mask.length;
}
