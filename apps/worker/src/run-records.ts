import { Redis, type RedisOptions } from 'ioredis';
import { RunIndex, RunRepository, redisConnectionFromEnv, type RunRecordStore } from '@dinoq/jobs';

/** A client for short commands: one retry each, so nothing waits on a Redis outage. */
export function failFastRedis(redisUrl: string): Redis {
  const connection = redisConnectionFromEnv({ REDIS_URL: redisUrl }) as RedisOptions;
  return new Redis({ ...connection, maxRetriesPerRequest: 1 });
}

/**
 * Run records as the worker and its compute process write them: compare-and-swap on run.json, and
 * every write also reported to the API's listing index in Redis (under the queue prefix the API
 * uses). The index is advisory: a failed index write is logged and the API's reconciliation puts
 * it right from S3.
 */
export function indexedRunRepository(
  store: RunRecordStore,
  redis: Redis,
  queuePrefix: string,
  warn: (message: string) => void,
): RunRepository {
  return new RunRepository(store, {
    observer: new RunIndex(redis, queuePrefix),
    onObserverError: (error, record) =>
      warn(`run ${record.runId}: listing index not updated (${error.message})`),
  });
}
