/**
 * Wraps an aggregation so that concurrent callers share one run, and callers within `ttlMs` of its
 * end reuse its answer: a burst of probes, or a flood of them, costs one aggregation per period.
 * A failed run is not kept, so the next caller starts a fresh one.
 */
export function sharedResult<T>(ttlMs: number, produce: () => Promise<T>): () => Promise<T> {
  let latest: { result: Promise<T>; settledAt: number | null } | null = null;
  return () => {
    const fresh = latest && (latest.settledAt === null || performance.now() - latest.settledAt < ttlMs);
    if (latest && fresh) return latest.result;
    const entry: { result: Promise<T>; settledAt: number | null } = { result: produce(), settledAt: null };
    latest = entry;
    entry.result.then(
      () => {
        entry.settledAt = performance.now();
      },
      () => {
        if (latest === entry) latest = null;
      },
    );
    return entry.result;
  };
}
