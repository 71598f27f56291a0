import * as fs from 'node:fs';
import * as path from 'node:path';
import { trainingBatch, type AugmentPool, type DecodedSplit } from '@dinoq/data';
import { runSteps, type LoopStepMetrics, type ReplicatedTrainer } from '@dinoq/dino';
import { commitLocalCheckpoint } from './local-layout';

export interface LoopOptions {
  trainer: ReplicatedTrainer;
  split: DecodedSplit;
  /** Augmentation threads holding `split`'s images; without one, batches are made on this thread. */
  pool?: AugmentPool;
  /** Stop after this global step (exclusive); defaults to the end of the schedule. */
  untilStep?: number;
  /** Stop after this many minutes of training (checked between steps). */
  minutes?: number;
  runDir?: string;
  /** Commit a checkpoint every n steps (and always at the end). 0 = only at the end. */
  checkpointEvery?: number;
  onStep?: (m: LoopStepMetrics) => void;
}

export interface LoopResult {
  steps: number;
  lastStep: number;
  metrics: LoopStepMetrics[];
  checkpoints: string[];
}

/** Trains locally, appending metrics.jsonl and committing checkpoints under `runDir`. */
export async function trainLoop(opts: LoopOptions): Promise<LoopResult> {
  const { trainer, split } = opts;
  const { config } = trainer;
  const until = Math.min(opts.untilStep ?? trainer.totalSteps, trainer.totalSteps);
  const deadline = opts.minutes ? Date.now() + opts.minutes * 60_000 : Infinity;
  const metricsFile = opts.runDir ? path.join(opts.runDir, 'metrics.jsonl') : null;
  if (opts.runDir) fs.mkdirSync(opts.runDir, { recursive: true });
  const result: LoopResult = { steps: 0, lastStep: trainer.step, metrics: [], checkpoints: [] };
  const every = opts.checkpointEvery ?? 0;
  const sampling = { seed: config.train.seed, batchSize: config.train.batchSize, pool: opts.pool };
  result.steps = await runSteps({
    trainer,
    toStep: until,
    batchFor: (step) => trainingBatch(split, config.augment, sampling, step),
    onStep: async (m) => {
      result.lastStep = m.step;
      result.metrics.push(m);
      if (metricsFile)
        fs.appendFileSync(metricsFile, JSON.stringify({ ...m, time: new Date().toISOString() }) + '\n');
      opts.onStep?.(m);
      if (opts.runDir && every > 0 && trainer.step % every === 0 && trainer.step < until) {
        result.checkpoints.push(
          commitLocalCheckpoint(opts.runDir, trainer.step, await trainer.checkpointFiles()),
        );
      }
      return Date.now() < deadline;
    },
  });
  if (opts.runDir && result.steps > 0) {
    result.checkpoints.push(
      commitLocalCheckpoint(opts.runDir, trainer.step, await trainer.checkpointFiles()),
    );
  }
  return result;
}
