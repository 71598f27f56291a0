import type { RedisRepository } from './repositories/redis.repository';

export interface LockedPassOptions<T> {
  redis: RedisRepository;
  /** The lock's name under the API's Redis prefix: one holder across all API replicas. */
  lockName: string;
  /** A crashed holder blocks the other replicas for at most this long. */
  lockTtlMs: number;
  /** The work, run while the lock is held. */
  run: () => Promise<T>;
  /** The result of a pass that found the lock held elsewhere. */
  skipped: () => T;
  /** What a timed pass does with its result or its error (manual passes return them). */
  onResult?: (result: T) => void;
  onError: (error: Error) => void;
}

/**
 * Background work that API replicas take turns at (reconciliation, the sweep controller): passes
 * every interval, at most one in flight per process (asking again returns the pass in progress),
 * and one at a time across processes, guarded by a Redis lock.
 */
export class LockedPass<T> {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<T> | null = null;

  constructor(private readonly options: LockedPassOptions<T>) {}

  /** Passes every `intervalMs` (none when ≤ 0), and one now when `now`. */
  start(intervalMs: number, now = false): void {
    if (now) this.trigger();
    if (intervalMs <= 0) return;
    this.timer = setInterval(() => this.trigger(), intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a pass in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inFlight?.catch(() => undefined);
  }

  /** One pass, or the pass of this process still in progress. */
  once(): Promise<T> {
    this.inFlight ??= this.locked().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private trigger(): void {
    this.once().then(
      (result) => this.options.onResult?.(result),
      (error: Error) => this.options.onError(error),
    );
  }

  private async locked(): Promise<T> {
    const { redis, lockName, lockTtlMs } = this.options;
    const lockKey = redis.apiKey(lockName);
    const token = await redis.acquireLock(lockKey, lockTtlMs);
    if (token === null) return this.options.skipped();
    try {
      return await this.options.run();
    } finally {
      await redis.releaseLock(lockKey, token).catch(() => false);
    }
  }
}
