import { Logger, type LogLevel } from '@nestjs/common';
import type { RedisOptions } from 'bullmq';
import { redisConnectionFromEnv } from '@dinoq/jobs';
import { storageFromEnv } from '@dinoq/storage';
import { readApiEnv } from './api-env';
import { bootstrapApi } from './bootstrap';

/** The same LOG_LEVEL names as the worker's pino logger, mapped to Nest's levels. */
function nestLogLevels(level: string | undefined): false | LogLevel[] {
  switch (level) {
    case 'silent':
      return false;
    case 'fatal':
    case 'error':
      return ['error', 'fatal'];
    case 'warn':
      return ['warn', 'error', 'fatal'];
    case 'debug':
    case 'trace':
      return ['log', 'warn', 'error', 'fatal', 'debug', 'verbose'];
    default:
      return ['log', 'warn', 'error', 'fatal'];
  }
}

async function main(): Promise<void> {
  const logLevels = nestLogLevels(process.env.LOG_LEVEL);
  if (logLevels) Logger.overrideLogger(logLevels);
  else Logger.overrideLogger(false);
  const logger = new Logger('dinoq-api');
  const env = readApiEnv(process.env);
  if (env.authDisabled) logger.warn('DINOQ_AUTH=off: every route is open to anyone who can reach this port');
  const storage = await storageFromEnv(process.env);
  // redisConnectionFromEnv builds plain ioredis options (host, port, tls, ...), never a client or cluster.
  const redisConnection = redisConnectionFromEnv(process.env) as RedisOptions;
  const api = await bootstrapApi({
    store: storage.store,
    redisConnection,
    apiKeys: env.apiKeys,
    authDisabled: env.authDisabled,
    reconcileIntervalMs: env.reconcileIntervalMs,
    sweepIntervalMs: env.sweepIntervalMs,
    stepLimits: env.stepLimits,
    uploadMaxTotalPixels: env.uploadMaxTotalPixels,
    demandLookaheadMs: env.demandLookaheadMs,
    port: env.port,
    host: env.host,
    logger: logLevels,
    // Must match the workers' DINOQ_QUEUE_PREFIX.
    queuePrefix: process.env.DINOQ_QUEUE_PREFIX || undefined,
  });
  logger.log(
    `listening on ${api.url} (storage ${storage.endpoint ?? 'AWS S3'}, bucket ${storage.bucket}` +
      `${storage.publicEndpoint !== storage.endpoint ? `, presigned URLs on ${storage.publicEndpoint}` : ''}); docs at /docs`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.log(`${signal}: closing`);
    try {
      await api.close();
      await storage.close();
      process.exit(0);
    } catch (error) {
      logger.error(`shutdown failed: ${(error as Error).message}`);
      process.exit(1);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exit(1);
});
