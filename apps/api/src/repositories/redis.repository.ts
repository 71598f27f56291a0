import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { listWorkers, type ListedWorker } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';

// Deletes the lock only if this holder still owns it, so an expired lock taken over by another
// replica is never released by the first one.
const RELEASE_IF_OWNER = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** Plain Redis access that is not a queue: liveness, worker announcements, locks. */
@Injectable()
export class RedisRepository implements OnModuleDestroy {
  private readonly logger = new Logger('RedisRepository');
  private readonly client: Redis;
  private lastErrorLog = 0;

  constructor(@Inject(API_OPTIONS) private readonly options: ApiOptions) {
    // One retry per command: health checks and locks must fail fast instead of queueing while
    // Redis is away (BullMQ's own connections keep retrying forever, as workers need).
    this.client = new Redis({ ...options.redisConnection, maxRetriesPerRequest: 1, lazyConnect: false });
    this.client.on('error', (error: Error) => {
      const now = Date.now();
      if (now - this.lastErrorLog > 10_000) {
        this.lastErrorLog = now;
        this.logger.warn(`Redis: ${error.message}`);
      }
    });
  }

  /** Round-trip time of a PING in milliseconds. */
  async ping(): Promise<number> {
    const started = performance.now();
    const answer = await this.client.ping();
    if (answer !== 'PONG') throw new Error(`Redis answered PING with ${JSON.stringify(answer)}`);
    return performance.now() - started;
  }

  /**
   * Workers of this deployment: the registry is shared by every deployment on the Redis, and a
   * worker announces the queue prefix it consumes under.
   */
  async workers(): Promise<ListedWorker[]> {
    return (await listWorkers(this.client)).filter((w) => w.queuePrefix === this.options.queuePrefix);
  }

  /** Key under this deployment's prefix, for state only the API uses. */
  apiKey(name: string): string {
    return `${this.options.queuePrefix}:api:${name}`;
  }

  /** SET NX PX: a token when the lock was taken, null when someone else holds it. */
  async acquireLock(key: string, ttlMs: number): Promise<string | null> {
    const token = randomUUID();
    const answer = await this.client.set(key, token, 'PX', ttlMs, 'NX');
    return answer === 'OK' ? token : null;
  }

  async releaseLock(key: string, token: string): Promise<boolean> {
    const removed = await this.client.eval(RELEASE_IF_OWNER, 1, key, token);
    return removed === 1;
  }

  async onModuleDestroy(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
