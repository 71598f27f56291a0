import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { Redis } from 'ioredis';
import { RunIndex } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';

/**
 * The Redis index of run summaries behind GET /runs, on a connection of its own. As the run
 * records' observer it hears of every run.json the API writes; workers report theirs to the same keys.
 */
@Injectable()
export class RunIndexRepository extends RunIndex implements OnModuleDestroy {
  constructor(@Inject(API_OPTIONS) options: ApiOptions) {
    // One retry per command, so a listing fails fast while Redis is away instead of queueing.
    const client = new Redis({ ...options.redisConnection, maxRetriesPerRequest: 1 });
    // Outages surface as failed requests here and are logged (rate-limited) by RedisRepository.
    client.on('error', () => undefined);
    super(client, options.queuePrefix);
  }

  async onModuleDestroy(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
