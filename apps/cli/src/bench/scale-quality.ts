import type { RunConfig } from '@dinoq/config';
import {
  DataParallelTrainer,
  DinoTrainer,
  mergeRound,
  runSteps,
  type ReplicatedTrainer,
  type StepLane,
} from '@dinoq/dino';
import { trainingBatch, type DecodedSplit } from '@dinoq/data';

/*
 * DiLoCo rounds trained in this process, one slice after another: the same trainers, lanes and
 * merge as the worker's train-slice and merge-round jobs, without the queue. Slices of a round
 * start from the same checkpoint and never see each other, so the order they run in changes
 * nothing: the result is the distributed run's.
 */

type Files = Record<string, Uint8Array>;

/**
 * What a slice's inner AdamW starts a round from: the merged checkpoint's moments (the mean of the
 * slices', as the worker's merge writes them), or the slice's own from its previous round (the
 * DiLoCo paper's inner optimizer state kept per worker), measured against each other here.
 */
export type InnerMoments = 'averaged' | 'per-slice';

export interface InProcessOptions {
  replicas: number;
  backend: string;
  /** Rounds only (default averaged). */
  moments?: InnerMoments;
  /** Called after every trained step with the global step. */
  onStep?: (step: number) => void;
}

/** Trains `trainer` on its steps (its lane's) below `toStep`; returns its checkpoint files and disposes it. */
async function trainTo(
  trainer: ReplicatedTrainer,
  data: DecodedSplit,
  toStep: number,
  onStep?: (step: number) => void,
): Promise<Files> {
  const { config } = trainer;
  const sampling = { seed: config.train.seed, batchSize: config.train.batchSize };
  try {
    await runSteps({
      trainer,
      toStep,
      batchFor: (step) => trainingBatch(data, config.augment, sampling, step),
      onStep: (metrics) => onStep?.(metrics.step),
    });
    return await trainer.checkpointFiles();
  } finally {
    await trainer.dispose();
  }
}

/** Every step of the run in order, as one worker training sequential shards would. */
export async function trainSynchronous(
  config: RunConfig,
  data: DecodedSplit,
  opts: InProcessOptions,
): Promise<Files> {
  const trainer = await DataParallelTrainer.create(config, data.count, {
    replicas: opts.replicas,
    backend: opts.backend,
  });
  return trainTo(trainer, data, trainer.totalSteps, opts.onStep);
}

/** The run in rounds of `config.parallel.slices` slices of `syncEverySteps` steps each, merged after every round. */
export async function trainRounds(
  config: RunConfig,
  data: DecodedSplit,
  opts: InProcessOptions,
): Promise<Files> {
  const { slices, syncEverySteps, outer } = config.parallel;
  const seed = DinoTrainer.create(config, data.count);
  const seedStudent = seed.checkpointFiles()['student.safetensors'];
  const { itersPerEpoch, totalSteps } = seed;
  seed.dispose();

  let merged: Files | null = null;
  /** Per-slice moments: each slice's optimizer file from its previous round. */
  const ownMoments: Uint8Array[] = [];
  for (let fromStep = 0; fromStep < totalSteps;) {
    // The round plan of libs/jobs rounds.ts: N·H global steps, fewer slices when fewer steps are left.
    const toStep = Math.min(fromStep + slices * syncEverySteps, totalSteps);
    const roundSlices = Math.min(slices, toStep - fromStep);
    const results: Files[] = [];
    for (let slice = 0; slice < roundSlices; slice++) {
      const lane: StepLane = { start: fromStep + slice, stride: roundSlices };
      const options = { replicas: opts.replicas, backend: opts.backend, lane };
      const own = opts.moments === 'per-slice' ? ownMoments[slice] : undefined;
      const start = merged && own ? { ...merged, 'optimizer.safetensors': own } : merged;
      const trainer: ReplicatedTrainer = start
        ? await DataParallelTrainer.restore(config, data.count, start, options)
        : await DataParallelTrainer.create(config, data.count, options);
      const result = await trainTo(trainer, data, toStep, opts.onStep);
      ownMoments[slice] = result['optimizer.safetensors'];
      results.push(result);
    }
    merged = mergeRound({
      start: merged ?? { 'student.safetensors': seedStudent },
      slices: results,
      outer,
      step: toStep,
      epoch: Math.floor(toStep / itersPerEpoch),
    });
    fromStep = toStep;
  }
  if (!merged) throw new Error('the run has no steps to train');
  return merged;
}
