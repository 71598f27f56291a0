import type { ConnectionOptions } from 'bullmq';

/**
 * Redis connection for BullMQ from REDIS_URL (default redis://127.0.0.1:6379).
 * maxRetriesPerRequest must be null for workers' blocking commands.
 */
export function redisConnectionFromEnv(env: NodeJS.ProcessEnv = process.env): ConnectionOptions {
  const url = new URL(env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new Error(`REDIS_URL must start with redis:// or rediss://, got "${url.protocol}"`);
  }
  return {
    host: url.hostname,
    port: Number(url.port || 6379),
    username: url.username || undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
    tls: url.protocol === 'rediss:' ? {} : undefined,
    maxRetriesPerRequest: null,
  };
}
