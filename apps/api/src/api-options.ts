import type { RedisOptions } from 'bullmq';
import { DEFAULT_DEMAND_LOOKAHEAD_MS, QUEUE_PREFIX } from '@dinoq/jobs';
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
  /** Period of the loop that advances running sweeps (rung evaluations, stops); 0 turns it off. Default 5 s. */
  sweepIntervalMs?: number;
  /** Ceilings of one training step's estimated memory and work; unset ones take the defaults. */
  stepLimits?: Partial<StepLimits>;
  /** Pixels all images of one attention upload may hold together (header figures, before decoding). */
  uploadMaxTotalPixels?: number;
  /** Delayed jobs due within this many ms count as queue demand (see QueueDemand). Default 120 s. */
  demandLookaheadMs?: number;
}

export interface ApiOptions {
  store: ObjectStore;
  redisConnection: RedisOptions;
  apiKeys: readonly string[];
  authDisabled: boolean;
  queuePrefix: string;
  reconcileIntervalMs: number;
  reconcileOnStart: boolean;
  sweepIntervalMs: number;
  stepLimits: StepLimits;
  uploadMaxTotalPixels: number;
  demandLookaheadMs: number;
}

export const API_OPTIONS = Symbol('API_OPTIONS');

export const DEFAULT_RECONCILE_INTERVAL_MS = 30_000;
export const DEFAULT_SWEEP_INTERVAL_MS = 5_000;
/**
 * Four images at the 4096 × 4096 per-image limit, or sixteen of 2048 × 2048: attention maps are
 * computed at the run's crop size, so larger uploads buy nothing but decoding time and memory.
 */
export const DEFAULT_UPLOAD_MAX_TOTAL_PIXELS = 4 * 4096 * 4096;

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
  const sweepIntervalMs = deps.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  if (!Number.isFinite(sweepIntervalMs) || sweepIntervalMs < 0) {
    throw new Error(`sweepIntervalMs must be a non-negative number, got ${sweepIntervalMs}`);
  }
  const uploadMaxTotalPixels = deps.uploadMaxTotalPixels ?? DEFAULT_UPLOAD_MAX_TOTAL_PIXELS;
  if (!Number.isSafeInteger(uploadMaxTotalPixels) || uploadMaxTotalPixels < 1) {
    throw new Error(`uploadMaxTotalPixels must be a positive integer, got ${uploadMaxTotalPixels}`);
  }
  const demandLookaheadMs = deps.demandLookaheadMs ?? DEFAULT_DEMAND_LOOKAHEAD_MS;
  if (!Number.isSafeInteger(demandLookaheadMs) || demandLookaheadMs < 0) {
    throw new Error(`demandLookaheadMs must be a non-negative integer, got ${demandLookaheadMs}`);
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
    sweepIntervalMs,
    stepLimits: resolveStepLimits(deps.stepLimits),
    uploadMaxTotalPixels,
    demandLookaheadMs,
  };
}

/**
 * Runs whose estimated step (libs/config step-cost.ts) exceeds these are refused at submit,
 * whatever workers are registered. Defaults: 256 GiB, above any single accelerator and most
 * hosts; 10⁶ GFLOP, twice the paper's ViT-B/16 step (batch 1024, 2 × 224 + 10 × 96 px crops:
 * 4.9·10⁵ GFLOP).
 */
export interface StepLimits {
  maxStepMemoryBytes: number;
  maxStepGflops: number;
}

export const DEFAULT_STEP_LIMITS: StepLimits = { maxStepMemoryBytes: 256 * 1024 ** 3, maxStepGflops: 1e6 };

function resolveStepLimits(limits: Partial<StepLimits> = {}): StepLimits {
  const resolved: StepLimits = {
    maxStepMemoryBytes: limits.maxStepMemoryBytes ?? DEFAULT_STEP_LIMITS.maxStepMemoryBytes,
    maxStepGflops: limits.maxStepGflops ?? DEFAULT_STEP_LIMITS.maxStepGflops,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isFinite(value) || value <= 0)
      throw new Error(`stepLimits.${name} must be positive, got ${value}`);
  }
  return resolved;
}
