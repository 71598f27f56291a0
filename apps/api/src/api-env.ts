import { DEFAULT_DEMAND_LOOKAHEAD_MS } from '@dinoq/jobs';
import {
  DEFAULT_RECONCILE_INTERVAL_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
  DEFAULT_STEP_LIMITS,
  DEFAULT_UPLOAD_MAX_TOTAL_PIXELS,
  type StepLimits,
} from './api-options';

export interface ApiEnv {
  port: number;
  host: string;
  apiKeys: string[];
  authDisabled: boolean;
  reconcileIntervalMs: number;
  sweepIntervalMs: number;
  uploadMaxTotalPixels: number;
  stepLimits: StepLimits;
  demandLookaheadMs: number;
}

function integerSetting(
  env: NodeJS.ProcessEnv,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * The API's own settings (S3 and Redis settings are read by storageFromEnv / redisConnectionFromEnv).
 * Refuses to run without API keys, because an open API lets anyone start GPU jobs; DINOQ_AUTH=off is
 * the explicit opt-out for local demos.
 */
export function readApiEnv(env: NodeJS.ProcessEnv = process.env): ApiEnv {
  const auth = (env.DINOQ_AUTH ?? 'on').trim().toLowerCase();
  if (auth !== 'on' && auth !== 'off')
    throw new Error(`DINOQ_AUTH must be "on" or "off", got ${JSON.stringify(env.DINOQ_AUTH)}`);
  const apiKeys = (env.DINOQ_API_KEYS ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key.length > 0);
  const authDisabled = auth === 'off';
  if (!authDisabled && apiKeys.length === 0) {
    throw new Error(
      'DINOQ_API_KEYS is empty: set a comma-separated list of API keys, or DINOQ_AUTH=off for a local demo',
    );
  }
  return {
    port: integerSetting(env, 'PORT', 3000, 0, 65535),
    host: env.HOST?.trim() || '0.0.0.0',
    apiKeys,
    authDisabled,
    reconcileIntervalMs:
      integerSetting(env, 'DINOQ_RECONCILE_INTERVAL_S', DEFAULT_RECONCILE_INTERVAL_MS / 1000, 0, 86_400) *
      1000,
    sweepIntervalMs:
      integerSetting(env, 'DINOQ_SWEEP_INTERVAL_S', DEFAULT_SWEEP_INTERVAL_MS / 1000, 0, 86_400) * 1000,
    uploadMaxTotalPixels: integerSetting(
      env,
      'DINOQ_UPLOAD_MAX_TOTAL_PIXELS',
      DEFAULT_UPLOAD_MAX_TOTAL_PIXELS,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
    demandLookaheadMs:
      integerSetting(env, 'DINOQ_DEMAND_LOOKAHEAD_S', DEFAULT_DEMAND_LOOKAHEAD_MS / 1000, 0, 86_400) * 1000,
    stepLimits: {
      maxStepMemoryBytes: integerSetting(
        env,
        'DINOQ_MAX_STEP_MEMORY_BYTES',
        DEFAULT_STEP_LIMITS.maxStepMemoryBytes,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
      maxStepGflops: integerSetting(
        env,
        'DINOQ_MAX_STEP_GFLOPS',
        DEFAULT_STEP_LIMITS.maxStepGflops,
        1,
        Number.MAX_SAFE_INTEGER,
      ),
    },
  };
}
