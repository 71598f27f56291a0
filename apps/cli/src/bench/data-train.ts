import { createHash } from 'node:crypto';
import { resolveRunConfig, type RunConfig } from '@dinoq/config';
import {
  itersPerEpoch,
  StreamingAugmentPool,
  StreamingBatches,
  type StreamingSplitReader,
  type TrainingBatch,
} from '@dinoq/data';
import { DataParallelTrainer, runSteps, type ReplicatedTrainer } from '@dinoq/dino';

/** Training helpers shared by the parts of `npm run bench:data` that train. */

/** Steps left out of every speed figure: backend kernels, thread start-up and the first shard reads. */
export const WARMUP_STEPS = 5;

export interface TimedRun {
  /** Steps trained, the warm-up ones included. */
  steps: number;
  /** Steps after the warm-up, over which the rates are taken. */
  measuredSteps: number;
  seconds: number;
  stepsPerSecond: number;
  imagesPerSecond: number;
  /** Mean time a measured step waited for its batch: zero when the data pipeline kept ahead. */
  meanDataWaitMs: number;
}

/** Trains `steps` steps from the trainer's step on `batchFor`'s batches, timed after the warm-up. */
export async function trainTimed(
  trainer: ReplicatedTrainer,
  batchFor: (step: number) => Promise<TrainingBatch>,
  steps: number,
): Promise<TimedRun> {
  if (!Number.isInteger(steps) || steps <= WARMUP_STEPS)
    throw new Error(`train more than the ${WARMUP_STEPS} warm-up steps, got ${steps}`);
  let trained = 0;
  let measureFrom = 0;
  let waitMs = 0;
  await runSteps({
    trainer,
    toStep: trainer.step + steps,
    batchFor,
    onStep: (m) => {
      trained++;
      if (trained === WARMUP_STEPS) measureFrom = performance.now();
      else if (trained > WARMUP_STEPS) waitMs += m.dataWaitMs;
    },
  });
  const seconds = (performance.now() - measureFrom) / 1000;
  const measuredSteps = trained - WARMUP_STEPS;
  return {
    steps: trained,
    measuredSteps,
    seconds,
    stepsPerSecond: measuredSteps / seconds,
    imagesPerSecond: (measuredSteps * trainer.config.train.batchSize) / seconds,
    meanDataWaitMs: waitMs / measuredSteps,
  };
}

/**
 * Trains a new one-replica trainer for `steps` steps on the reader's batches, streamed as the worker
 * streams them with one augmentation thread; `finish` reads what it needs of the trainer before the
 * trainer, the batches and the thread are closed.
 */
export async function trainStreamed<T>(
  reader: StreamingSplitReader,
  config: RunConfig,
  steps: number,
  finish: (trainer: ReplicatedTrainer, run: TimedRun) => Promise<T>,
): Promise<T> {
  const pool = StreamingAugmentPool.start(1);
  const batches = new StreamingBatches({
    reader,
    cfg: config.augment,
    batchSize: config.train.batchSize,
    fromStep: 0,
    toStep: steps,
    pool,
  });
  const trainer = await DataParallelTrainer.create(config, reader.order.count, { replicas: 1 });
  try {
    return await finish(trainer, await trainTimed(trainer, (step) => batches.batchFor(step), steps));
  } finally {
    await batches.close();
    await Promise.all([pool.close(), trainer.dispose()]);
  }
}

/**
 * The tiny DINO config of the memory benchmark: small enough that the data pipeline, not the
 * model, holds most of the memory, with enough epochs to cover `steps` on `images` images.
 */
export function tinyStreamingConfig(images: number, steps: number): RunConfig {
  const batchSize = 32;
  return resolveRunConfig('fmnist-tiny', {
    model: { depth: 1, embedDim: 16, numHeads: 2 },
    head: { outDim: 64, hiddenDim: 32, bottleneckDim: 16 },
    augment: { localCropsNumber: 2 },
    train: { batchSize, epochs: Math.max(1, Math.ceil(steps / itersPerEpoch(images, batchSize))) },
  });
}

/** sha256 over a checkpoint's files, in name order: equal digests mean byte-identical checkpoints. */
export function checkpointDigest(files: Record<string, Uint8Array>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(files).sort()) hash.update(name).update(files[name]);
  return hash.digest('hex');
}
