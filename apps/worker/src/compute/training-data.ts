import * as path from 'node:path';
import type { AugmentConfig } from '@dinoq/config';
import {
  AugmentPool,
  ShardCache,
  splitDecodedBytes,
  splitOf,
  StreamingAugmentPool,
  StreamingBatches,
  StreamingSampleOrder,
  StreamingSplitReader,
  trainingBatch,
  type DatasetManifest,
  type TrainingBatch,
} from '@dinoq/data';
import type { RunRecord } from '@dinoq/jobs';
import type { ComputeContext } from './job-scope';
import { UnrecoverableJobError } from './protocol';

/*
 * Where a training job's batches come from. A split whose decoded images fit the worker's memory
 * budget is decoded once and kept (the dataset cache); a larger one is streamed from its shards
 * through a bounded local cache, so resident memory does not grow with the dataset. Both follow
 * the same sample order (shards shuffled, then samples within windows: libs/data sample-order.ts)
 * and the same augmentation draws, so they produce the same batches for the same seed.
 */

export type DataModeSetting = 'auto' | 'memory' | 'streaming';
export type DataMode = 'memory' | 'streaming';

/** How the compute process reads training data. */
export interface DataSettings {
  mode: DataModeSetting;
  /** Decoded bytes a split may take in memory before `auto` streams it instead. */
  memoryBudgetBytes: number;
  /** Where streamed shards are cached on local disk, one folder per dataset version. */
  shardCacheDir: string;
  shardCacheBytes: number;
}

export interface DataChoice {
  mode: DataMode;
  /** The split's decoded size in bytes (each image height × width × channels). */
  decodedBytes: number;
  reason: string;
}

/** "data held in memory (why)" or "data streamed from shards (why)", for the line a job logs when it starts. */
export function describeDataChoice(choice: DataChoice): string {
  return `data ${choice.mode === 'memory' ? 'held in memory' : 'streamed from shards'} (${choice.reason})`;
}

/** Memory or streaming for one split, and why (logged with every training job). */
export function chooseDataMode(
  settings: Pick<DataSettings, 'mode' | 'memoryBudgetBytes'>,
  manifest: DatasetManifest,
  split: string,
): DataChoice {
  const decodedBytes = splitDecodedBytes(manifest, split);
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
  if (settings.mode !== 'auto') {
    return { mode: settings.mode, decodedBytes, reason: `DINOQ_DATA_MODE=${settings.mode}` };
  }
  return decodedBytes <= settings.memoryBudgetBytes
    ? {
        mode: 'memory',
        decodedBytes,
        reason: `decoded split ${mib(decodedBytes)} fits the ${mib(settings.memoryBudgetBytes)} budget`,
      }
    : {
        mode: 'streaming',
        decodedBytes,
        reason: `decoded split ${mib(decodedBytes)} exceeds the ${mib(settings.memoryBudgetBytes)} budget`,
      };
}

/** The steps a job trains: start, start + stride, … below `toStep`. */
export interface StepRange {
  fromStep: number;
  toStep: number;
  stride: number;
}

/** The batches of one training job, prepared ahead of the step that needs them. */
export interface BatchSource {
  readonly choice: DataChoice;
  /** Augmentation threads (0: batches are prepared on the training thread between steps). */
  readonly threads: number;
  /** Batch `step`; steps are asked for in order. */
  batchFor(step: number): Promise<TrainingBatch>;
  /** Images and shards skipped as unusable so far (streaming; always 0 in memory, where loading fails instead). */
  skipped(): { images: number; shards: number; reasons: string[] };
  close(): Promise<void>;
}

export async function openBatches(
  ctx: ComputeContext,
  run: RunRecord,
  cfg: { augment: AugmentConfig; seed: number; batchSize: number },
  steps: StepRange,
  threads: number,
): Promise<BatchSource> {
  const { manifest, manifestSha } = await ctx.datasets.manifest(run.datasetName);
  const split = splitOf(manifest, 'train');
  if (split.count !== run.datasetSize) {
    throw new UnrecoverableJobError(
      `run ${run.runId}: dataset "${run.datasetName}" has ${split.count} training images, the run was planned for ${run.datasetSize}`,
    );
  }
  const order = StreamingSampleOrder.forSplit(split, cfg.seed);
  const choice = chooseDataMode(ctx.data, manifest, 'train');
  if (choice.mode === 'memory') {
    const held = await inMemory(ctx, run, cfg, order, choice, threads);
    if (held) return held;
    choice.mode = 'streaming';
    choice.reason = 'some images of the split are unusable, and streaming replaces them as it reads';
  }
  return streamed(ctx, run, manifest, manifestSha, cfg, order, choice, steps, threads);
}

/** The split held decoded in memory, or null when some of its images could not be decoded. */
async function inMemory(
  ctx: ComputeContext,
  run: RunRecord,
  cfg: { augment: AugmentConfig; seed: number; batchSize: number },
  order: StreamingSampleOrder,
  choice: DataChoice,
  threads: number,
): Promise<BatchSource | null> {
  const { data } = await ctx.datasets.split(run.datasetName, 'train');
  // Loading skips unusable images, which would shift every index after them.
  if (data.count !== order.count) return null;
  const pool = threads > 0 ? AugmentPool.start(data, threads) : undefined;
  const sampling = { seed: cfg.seed, batchSize: cfg.batchSize, pool, order };
  return {
    choice,
    threads: pool?.threads ?? 0,
    batchFor: (step) => trainingBatch(data, cfg.augment, sampling, step),
    skipped: () => ({ images: 0, shards: 0, reasons: [] }),
    close: async () => {
      await pool?.close();
    },
  };
}

async function streamed(
  ctx: ComputeContext,
  run: RunRecord,
  manifest: DatasetManifest,
  manifestSha: string,
  cfg: { augment: AugmentConfig; seed: number; batchSize: number },
  order: StreamingSampleOrder,
  choice: DataChoice,
  steps: StepRange,
  threads: number,
): Promise<BatchSource> {
  const cache = await shardCacheFor(ctx, run.datasetName, manifestSha);
  const reader = new StreamingSplitReader({ manifest, split: 'train', cache, order });
  const pool = threads > 0 ? StreamingAugmentPool.start(threads) : undefined;
  const batches = new StreamingBatches({
    reader,
    cfg: cfg.augment,
    batchSize: cfg.batchSize,
    ...steps,
    pool,
  });
  return {
    choice,
    threads: pool?.threads ?? 0,
    batchFor: (step) => batches.batchFor(step),
    skipped: () => {
      const stats = reader.stats();
      return {
        images: stats.skippedImages,
        shards: stats.skippedShards,
        reasons: [...stats.skippedShardReasons, ...stats.skippedImageReasons],
      };
    },
    close: async () => {
      await batches.close();
      await pool?.close();
    },
  };
}

/** One shard cache per dataset version, kept for the life of the compute process (shared by all jobs). */
export function shardCacheFor(
  ctx: ComputeContext,
  dataset: string,
  manifestSha: string,
): Promise<ShardCache> {
  const key = `${dataset}-${manifestSha.slice(0, 16)}`;
  let cache = ctx.shardCaches.get(key);
  if (!cache) {
    cache = ShardCache.open({
      store: ctx.store,
      dataset,
      dir: path.join(ctx.data.shardCacheDir, key),
      maxBytes: ctx.data.shardCacheBytes,
    });
    cache.catch(() => ctx.shardCaches.delete(key));
    ctx.shardCaches.set(key, cache);
  }
  return cache;
}
