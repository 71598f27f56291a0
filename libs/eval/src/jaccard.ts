/**
 * Jaccard index (intersection over union) of two binary masks of the same size; any nonzero
 * value counts as "on". Two empty masks agree perfectly (1): nothing was to be found and
 * nothing was marked.
 */
export function jaccard(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length)
    throw new Error(`jaccard: masks differ in size (${a.length} vs ${b.length} pixels)`);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] !== 0;
    const y = b[i] !== 0;
    if (x && y) inter++;
    if (x || y) union++;
  }
  return union === 0 ? 1 : inter / union;
}
