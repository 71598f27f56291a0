import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { QUEUE_PREFIX, QueueName, allQueues, type DeviceClass } from '@dinoq/jobs';
import type { StorageEnv } from '@dinoq/storage';
import { parseReplicaSetting, type ReplicaSetting } from '@dinoq/dino';
import { parseDataThreads, type DataThreadSetting } from '@dinoq/data';
import type { DataSettings } from './compute/training-data';

const BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

export const DEFAULT_SHUTDOWN_GRACE_MS = 20_000;
/** An abandoned job stops between steps; one step gets at least this long. */
export const MIN_ABANDON_WAIT_MS = 5_000;
/** After the job stopped: requeueing it, withdrawing the heartbeat, closing connections. */
export const SHUTDOWN_CLEANUP_MS = 5_000;

export interface ShutdownTimings {
  shutdownGraceMs: number;
  abandonWaitMs: number;
}

/**
 * How a worker spends its stop. SIGTERM stops it taking jobs; the current job may run on for
 * `shutdownGraceMs` (a training shard finishes and commits), is then told to stop at its next safe
 * point (committing nothing; it resumes from the last commit), and after `abandonWaitMs` more its
 * compute process is killed.
 *
 * The platform kills the whole process `DINOQ_TERMINATION_GRACE_SECONDS` (T) after SIGTERM: the
 * deployment sets it from the same value as Kubernetes' terminationGracePeriodSeconds or compose's
 * stop_grace_period, and the worker fits its stop inside it:
 *   abandonWaitMs   = max(5 s, T / 10)
 *   shutdownGraceMs = T − abandonWaitMs − 5 s (closing up), unless DINOQ_SHUTDOWN_GRACE_MS is set,
 *                     which must then fit the same budget.
 * Without T (a plain process): shutdownGraceMs = DINOQ_SHUTDOWN_GRACE_MS or 20 s, and
 * abandonWaitMs = max(5 s, shutdownGraceMs), as long as the grace itself.
 */
export function shutdownTimings(
  graceMsSetting: number | undefined,
  terminationSeconds: number | undefined,
): ShutdownTimings {
  if (terminationSeconds === undefined) {
    const shutdownGraceMs = graceMsSetting ?? DEFAULT_SHUTDOWN_GRACE_MS;
    return { shutdownGraceMs, abandonWaitMs: Math.max(MIN_ABANDON_WAIT_MS, shutdownGraceMs) };
  }
  const terminationMs = terminationSeconds * 1000;
  const abandonWaitMs = Math.max(MIN_ABANDON_WAIT_MS, Math.floor(terminationMs / 10));
  const budgetMs = terminationMs - abandonWaitMs - SHUTDOWN_CLEANUP_MS;
  if (graceMsSetting !== undefined && graceMsSetting > budgetMs) {
    throw new Error(
      `DINOQ_SHUTDOWN_GRACE_MS=${graceMsSetting} does not fit DINOQ_TERMINATION_GRACE_SECONDS=${terminationSeconds}: ` +
        `at most ${budgetMs} ms leaves ${abandonWaitMs} ms for an abandoned job to stop and ` +
        `${SHUTDOWN_CLEANUP_MS} ms to close; unset it to derive it`,
    );
  }
  return { shutdownGraceMs: graceMsSetting ?? budgetMs, abandonWaitMs };
}

const optionalText = z
  .string()
  .trim()
  .transform((value) => (value === '' ? undefined : value))
  .optional();

/** An integer in [min, max], or undefined when unset. */
function optionalInteger(name: string, min: number, max: number) {
  return z
    .string()
    .trim()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === '') return undefined;
      const value = Number(raw);
      if (!Number.isInteger(value) || value < min || value > max) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must be an integer in [${min}, ${max}], got "${raw}"`,
        });
        return z.NEVER;
      }
      return value;
    });
}

function integerSetting(name: string, fallback: number, min: number, max: number) {
  return optionalInteger(name, min, max).transform((value) => value ?? fallback);
}

/** A byte count, or undefined when unset (the worker then measures what it can). */
function optionalBytes(name: string) {
  return z
    .string()
    .trim()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === '') return undefined;
      const value = Number(raw);
      if (!Number.isSafeInteger(value) || value < 1) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must be a positive integer of bytes, got "${raw}"`,
        });
        return z.NEVER;
      }
      return value;
    });
}

/** A variable read by a parser shared with other entry points; its error becomes the issue. */
function parsedSetting<T>(parse: (raw: string | undefined) => T) {
  return z
    .string()
    .optional()
    .transform((raw, ctx): T => {
      try {
        return parse(raw);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
        return z.NEVER;
      }
    });
}

const queueList = z
  .string()
  .trim()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined || raw === '') return undefined;
    const names = raw
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name.length > 0);
    const unknown = names.filter((name) => !(allQueues as string[]).includes(name));
    if (unknown.length > 0 || names.length === 0) {
      ctx.addIssue({
        code: 'custom',
        message: `DINOQ_WORKER_QUEUES names unknown queues (${unknown.join(', ') || 'none given'}); known: ${allQueues.join(', ')}`,
      });
      return z.NEVER;
    }
    return [...new Set(names)] as QueueName[];
  });

const envSchema = z.object({
  REDIS_URL: optionalText,
  S3_ENDPOINT: optionalText,
  S3_BUCKET: optionalText,
  S3_REGION: optionalText,
  S3_ACCESS_KEY_ID: optionalText,
  S3_SECRET_ACCESS_KEY: optionalText,
  DINOQ_DATA_DIR: optionalText,
  DINOQ_DEVICE_CLASS: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '' || value === 'auto') return undefined;
      if (value === 'gpu' || value === 'cpu') return value as DeviceClass;
      ctx.addIssue({ code: 'custom', message: `DINOQ_DEVICE_CLASS must be gpu or cpu, got "${value}"` });
      return z.NEVER;
    }),
  DINOQ_WORKER_QUEUES: queueList,
  DINOQ_BACKEND: z
    .string()
    .trim()
    .toLowerCase()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return 'auto' as const;
      if ((BACKENDS as readonly string[]).includes(value)) return value as (typeof BACKENDS)[number];
      ctx.addIssue({
        code: 'custom',
        message: `DINOQ_BACKEND must be one of ${BACKENDS.join(', ')}, got "${value}"`,
      });
      return z.NEVER;
    }),
  DINOQ_LOCK_MS: integerSetting('DINOQ_LOCK_MS', 30_000, 1_000, 3_600_000),
  DINOQ_SHUTDOWN_GRACE_MS: optionalInteger('DINOQ_SHUTDOWN_GRACE_MS', 0, 86_400_000),
  DINOQ_TERMINATION_GRACE_SECONDS: optionalInteger(
    'DINOQ_TERMINATION_GRACE_SECONDS',
    (MIN_ABANDON_WAIT_MS + SHUTDOWN_CLEANUP_MS) / 1000,
    86_400,
  ),
  DINOQ_QUEUE_PREFIX: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return QUEUE_PREFIX;
      if (/^[A-Za-z0-9_-]+$/.test(value)) return value;
      ctx.addIssue({
        code: 'custom',
        message: `DINOQ_QUEUE_PREFIX must be letters, digits, '-' or '_', got "${value}"`,
      });
      return z.NEVER;
    }),
  DINOQ_DATASET_CACHE_MB: integerSetting('DINOQ_DATASET_CACHE_MB', 1024, 0, 1_048_576),
  DINOQ_DATA_MODE: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value === '') return 'auto' as const;
      if (value === 'auto' || value === 'memory' || value === 'streaming') return value;
      ctx.addIssue({
        code: 'custom',
        message: `DINOQ_DATA_MODE must be auto, memory or streaming, got "${value}"`,
      });
      return z.NEVER;
    }),
  DINOQ_SHARD_CACHE_DIR: optionalText,
  DINOQ_SHARD_CACHE_MB: integerSetting('DINOQ_SHARD_CACHE_MB', 8192, 1, 16_777_216),
  DINOQ_TRAIN_REPLICAS: parsedSetting((raw) => parseReplicaSetting(raw, 'DINOQ_TRAIN_REPLICAS')),
  DINOQ_DATA_THREADS: parsedSetting((raw) => parseDataThreads(raw, 'DINOQ_DATA_THREADS')),
  DINOQ_WORKER_MEMORY_BYTES: optionalBytes('DINOQ_WORKER_MEMORY_BYTES'),
  DINOQ_GPU_MEMORY_BYTES: optionalBytes('DINOQ_GPU_MEMORY_BYTES'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Everything the worker reads from its environment, validated once at start-up. */
export interface WorkerSettings {
  redisUrl: string;
  /** Storage as storageFromEnv reads it; no endpoint means an embedded s3rver in this process. */
  storage: StorageEnv;
  /** Undefined: decided by the backend the compute process loads. */
  deviceClass: DeviceClass | undefined;
  /** Undefined: the default queues of the device class. */
  queues: QueueName[] | undefined;
  backend: (typeof BACKENDS)[number];
  /** BullMQ lockDuration and stalledInterval: how soon a killed worker's job goes to another worker. */
  lockMs: number;
  /** How long SIGTERM waits for the current job before abandoning it. */
  shutdownGraceMs: number;
  /** How long an abandoned job may take to reach its next safe point before its process is killed. */
  abandonWaitMs: number;
  /** BullMQ key prefix; the API must use the same one. */
  queuePrefix: string;
  /** Decoded datasets kept in the compute process between jobs; also the largest split held in memory. */
  datasetCacheBytes: number;
  /** How training reads its data: held decoded in memory, streamed from shards, or chosen per split. */
  data: Omit<DataSettings, 'memoryBudgetBytes'>;
  /** Data-parallel replicas per training shard (`auto`: one per core on single-threaded backends). */
  trainReplicas: ReplicaSetting;
  /** Augmentation threads per training shard (`auto`: one when a single replica holds the main thread). */
  dataThreads: DataThreadSetting;
  /** Host memory the compute process may use; undefined: the cgroup limit or the machine's memory. */
  workerMemoryBytes: number | undefined;
  /** Device memory of a GPU worker (tfjs cannot report it before allocating); undefined: unknown. */
  gpuMemoryBytes: number | undefined;
  logLevel: string;
}

export function readWorkerSettings(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const reasons = parsed.error.issues.map((issue) =>
      issue.code === 'custom' ? issue.message : `${issue.path.join('.')}: ${issue.message}`,
    );
    throw new Error(`worker configuration is invalid: ${reasons.join('; ')}`);
  }
  const e = parsed.data;
  const shutdown = shutdownTimings(e.DINOQ_SHUTDOWN_GRACE_MS, e.DINOQ_TERMINATION_GRACE_SECONDS);
  return {
    redisUrl: e.REDIS_URL ?? 'redis://127.0.0.1:6379',
    storage: {
      S3_ENDPOINT: e.S3_ENDPOINT,
      S3_BUCKET: e.S3_BUCKET,
      S3_REGION: e.S3_REGION,
      S3_ACCESS_KEY_ID: e.S3_ACCESS_KEY_ID,
      S3_SECRET_ACCESS_KEY: e.S3_SECRET_ACCESS_KEY,
      DINOQ_DATA_DIR: e.DINOQ_DATA_DIR,
    },
    deviceClass: e.DINOQ_DEVICE_CLASS,
    queues: e.DINOQ_WORKER_QUEUES,
    backend: e.DINOQ_BACKEND,
    lockMs: e.DINOQ_LOCK_MS,
    ...shutdown,
    queuePrefix: e.DINOQ_QUEUE_PREFIX,
    datasetCacheBytes: e.DINOQ_DATASET_CACHE_MB * 1024 * 1024,
    data: {
      mode: e.DINOQ_DATA_MODE,
      shardCacheDir: e.DINOQ_SHARD_CACHE_DIR ?? path.join(os.tmpdir(), 'dinoq-shard-cache'),
      shardCacheBytes: e.DINOQ_SHARD_CACHE_MB * 1024 * 1024,
    },
    trainReplicas: e.DINOQ_TRAIN_REPLICAS,
    dataThreads: e.DINOQ_DATA_THREADS,
    workerMemoryBytes: e.DINOQ_WORKER_MEMORY_BYTES,
    gpuMemoryBytes: e.DINOQ_GPU_MEMORY_BYTES,
    logLevel: e.LOG_LEVEL,
  };
}
