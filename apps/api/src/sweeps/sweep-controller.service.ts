import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { RedisRepository } from '../repositories/redis.repository';
import { SweepsService } from './sweeps.service';

/** A crashed holder blocks the other replicas for at most this long. */
const LOCK_TTL_MS = 60_000;

/**
 * The loop that moves running sweeps on: it reads each one's trials and rung results from S3,
 * requests the evaluations its rungs need, and cancels the trials successive halving stops. One
 * API replica at a time holds it (a Redis lock); after a Redis wipe the next pass finds every
 * running sweep in S3 and requests again whatever evaluation the wipe lost.
 */
@Injectable()
export class SweepControllerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('SweepController');
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<number> | null = null;

  constructor(
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
    private readonly sweeps: SweepsService,
    private readonly redis: RedisRepository,
  ) {}

  onApplicationBootstrap(): void {
    if (this.options.sweepIntervalMs <= 0) return;
    this.timer = setInterval(() => this.trigger(), this.options.sweepIntervalMs);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inFlight?.catch(() => undefined);
  }

  /** One pass over the running sweeps (or the pass in progress); resolves to how many it advanced. */
  advanceOnce(): Promise<number> {
    this.inFlight ??= this.pass().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private trigger(): void {
    this.advanceOnce().catch((error: Error) => this.logger.warn(`sweep pass failed: ${error.message}`));
  }

  private async pass(): Promise<number> {
    const lockKey = this.redis.apiKey('sweep-lock');
    const token = await this.redis.acquireLock(lockKey, LOCK_TTL_MS);
    if (token === null) return 0;
    let advanced = 0;
    try {
      for (const record of await this.sweeps.runningSweeps()) {
        try {
          const report = await this.sweeps.advance(record);
          advanced += 1;
          if (report.status !== 'running') this.logger.log(`sweep ${record.sweepId} ${report.status}`);
        } catch (error) {
          this.logger.warn(`sweep ${record.sweepId}: ${(error as Error).message}`);
        }
      }
    } finally {
      await this.redis.releaseLock(lockKey, token).catch(() => false);
    }
    return advanced;
  }
}
