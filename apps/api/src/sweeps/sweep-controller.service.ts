import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { LockedPass } from '../locked-pass';
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
  private readonly pass: LockedPass<number>;

  constructor(
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
    private readonly sweeps: SweepsService,
    redis: RedisRepository,
  ) {
    this.pass = new LockedPass({
      redis,
      lockName: 'sweep-lock',
      lockTtlMs: LOCK_TTL_MS,
      run: () => this.advanceRunning(),
      skipped: () => 0,
      onError: (error) => this.logger.warn(`sweep pass failed: ${error.message}`),
    });
  }

  onApplicationBootstrap(): void {
    this.pass.start(this.options.sweepIntervalMs);
  }

  onModuleDestroy(): Promise<void> {
    return this.pass.stop();
  }

  /** One pass over the running sweeps (or the pass in progress); resolves to how many it advanced. */
  advanceOnce(): Promise<number> {
    return this.pass.once();
  }

  private async advanceRunning(): Promise<number> {
    let advanced = 0;
    for (const record of await this.sweeps.runningSweeps()) {
      try {
        const report = await this.sweeps.advance(record);
        advanced += 1;
        if (report.status !== 'running') this.logger.log(`sweep ${record.sweepId} ${report.status}`);
      } catch (error) {
        this.logger.warn(`sweep ${record.sweepId}: ${(error as Error).message}`);
      }
    }
    return advanced;
  }
}
