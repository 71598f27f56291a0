import { announceWorker, withdrawWorker, type RedisLike, type WorkerAnnouncement } from '@dinoq/jobs';
import type { Logger } from './logger';

export const HEARTBEAT_INTERVAL_MS = 10_000;

/**
 * Keeps `dinoq:workers:<id>` alive (TTL 30 s) with what this worker is and does, so the API can
 * list live workers; the key is deleted on a clean exit and expires after a crash.
 */
export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  private lastBeat: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly redis: RedisLike,
    private readonly describe: () => WorkerAnnouncement,
    private readonly logger: Logger,
    private readonly intervalMs = HEARTBEAT_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.beat();
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.timer.unref();
  }

  /** Announces now (e.g. when the current job changes) instead of at the next tick. */
  beat(): void {
    if (this.stopped) return;
    this.lastBeat = this.lastBeat
      .then(() => announceWorker(this.redis, this.describe()))
      .catch((error: Error) => this.logger.warn({ err: error.message }, 'heartbeat failed'));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.lastBeat;
    await withdrawWorker(this.redis, this.describe().workerId).catch((error: Error) =>
      this.logger.warn({ err: error.message }, 'could not withdraw the worker announcement'),
    );
  }
}
