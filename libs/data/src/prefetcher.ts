/**
 * Prepares upcoming batches while the current step runs. `get(step)` returns batch `step`
 * (produced now if it was not prefetched) and starts producing the next `depth` steps.
 * Time spent waiting in `get` is the data-loading cost the training step actually sees.
 *
 * Work overlaps the step only where it can run beside it: sharp calls run in libuv's thread
 * pool, while JS work such as `augmentBatch` (~30 ms for 64 images × 6 small views) runs on
 * this thread whenever the step awaits, since augmentBatch yields every few images.
 */
export class Prefetcher<T> {
  private readonly pending = new Map<number, Promise<T>>();
  private readonly depth: number;
  private waitMsTotal = 0;
  private served = 0;
  private prefetchHits = 0;

  constructor(
    private readonly produce: (step: number) => Promise<T>,
    options: { depth?: number } = {},
  ) {
    this.depth = options.depth ?? 1;
    if (!Number.isInteger(this.depth) || this.depth < 0)
      throw new Error(`prefetch depth must be a non-negative integer, got ${this.depth}`);
  }

  async get(step: number): Promise<T> {
    const ready = this.pending.get(step);
    if (ready) this.prefetchHits++;
    const current = ready ?? this.start(step);
    // Anything prefetched for an earlier or far-off step is stale (the caller jumped).
    for (const s of this.pending.keys()) if (s <= step || s > step + this.depth) this.pending.delete(s);
    const t0 = performance.now();
    let value: T;
    try {
      value = await current;
    } finally {
      this.waitMsTotal += performance.now() - t0;
      this.served++;
    }
    // Start the next batches only now: started earlier, they would interleave with this one and delay it.
    for (let s = step + 1; s <= step + this.depth; s++)
      if (!this.pending.has(s)) this.pending.set(s, this.start(s));
    return value;
  }

  /** Cumulative: total and mean wait, batches served, and how many were ready-started ahead. */
  get stats(): { waitMs: number; meanWaitMs: number; batches: number; prefetched: number } {
    return {
      waitMs: this.waitMsTotal,
      meanWaitMs: this.served ? this.waitMsTotal / this.served : 0,
      batches: this.served,
      prefetched: this.prefetchHits,
    };
  }

  /** Drops batches in flight; their results (or errors) are discarded. */
  clear(): void {
    this.pending.clear();
  }

  private start(step: number): Promise<T> {
    const p = this.produce(step);
    // A prefetched batch that fails and is never asked for must not become an unhandled rejection;
    // when it is asked for, `get` still sees the error.
    p.catch(() => undefined);
    return p;
  }
}
