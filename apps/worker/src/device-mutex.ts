/** Raised in a waiter whose AbortSignal fired before it got the device. */
export class MutexAbortedError extends Error {
  override readonly name = 'MutexAbortedError';
  constructor(reason: unknown) {
    super(`stopped waiting for the device: ${reason instanceof Error ? reason.message : String(reason)}`);
  }
}

type Waiter = (release: () => void) => void;

/**
 * One holder at a time, first come first served. Every queue's processor takes it before it
 * hands work to the compute process, so a GPU (or the single wasm thread) never runs two jobs.
 */
export class DeviceMutex {
  private held = false;
  private holder: string | null = null;
  private readonly waiters: Waiter[] = [];

  get locked(): boolean {
    return this.held;
  }

  /** Label given by the current holder (for heartbeats and logs). */
  get currentHolder(): string | null {
    return this.holder;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves with a release function once the device is free; release is idempotent. */
  acquire(label: string, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(new MutexAbortedError(signal.reason));
    if (!this.held) return Promise.resolve(this.take(label));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new MutexAbortedError(signal?.reason));
      };
      const waiter: Waiter = (release) => {
        signal?.removeEventListener('abort', onAbort);
        this.holder = label;
        resolve(release);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Runs `work` while holding the device. */
  async runExclusive<T>(label: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(label, signal);
    try {
      return await work();
    } finally {
      release();
    }
  }

  private take(label: string): () => void {
    this.held = true;
    this.holder = label;
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) {
        // Ownership passes straight to the next waiter, so nobody can slip in between.
        next(this.releaser());
      } else {
        this.held = false;
        this.holder = null;
      }
    };
  }
}
