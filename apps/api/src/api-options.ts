import type { RedisOptions } from 'bullmq';
import { QUEUE_PREFIX } from '@dinoq/jobs';
import type { ObjectStore } from '@dinoq/storage';

/** What the API needs from outside; tests pass a real s3rver-backed store and a real Redis. */
export interface ApiDeps {
  store: ObjectStore;
  redisConnection: RedisOptions;
  /** Accepted bearer keys. Must be non-empty unless `authDisabled`. */
  apiKeys: readonly string[];
  /** Local demos only: every route is open. */
  authDisabled?: boolean;
  /** BullMQ key prefix; workers must use the same one. Defaults to the product prefix. */
  queuePrefix?: string;
  /** Seconds-scale loop that re-enqueues lost shard jobs; 0 turns the timer off. Default 30 s. */
  reconcileIntervalMs?: number;
  /** Runs one reconciliation right after start-up (default true). */
  reconcileOnStart?: boolean;
}

export interface ApiOptions {
  store: ObjectStore;
  redisConnection: RedisOptions;
  apiKeys: readonly string[];
  authDisabled: boolean;
  queuePrefix: string;
  reconcileIntervalMs: number;
  reconcileOnStart: boolean;
}

export const API_OPTIONS = Symbol('API_OPTIONS');

export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;

export function resolveApiOptions(deps: ApiDeps): ApiOptions {
  const authDisabled = deps.authDisabled ?? false;
  const apiKeys = deps.apiKeys.map((key) => key.trim()).filter((key) => key.length > 0);
  if (!authDisabled && apiKeys.length === 0) {
    throw new Error('API keys: at least one non-empty key is required unless authentication is disabled');
  }
  const reconcileIntervalMs = deps.reconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS;
  if (!Number.isFinite(reconcileIntervalMs) || reconcileIntervalMs < 0) {
    throw new Error(`reconcileIntervalMs must be a non-negative number, got ${reconcileIntervalMs}`);
  }
  const queuePrefix = deps.queuePrefix ?? QUEUE_PREFIX;
  if (!/^[A-Za-z0-9_-]+$/.test(queuePrefix)) {
    throw new Error(`queuePrefix must be letters, digits, '-' or '_', got ${JSON.stringify(queuePrefix)}`);
  }
  return {
    store: deps.store,
    redisConnection: deps.redisConnection,
    apiKeys,
    authDisabled,
    queuePrefix,
    reconcileIntervalMs,
    reconcileOnStart: deps.reconcileOnStart ?? true,
  };
}
