import * as fs from 'node:fs';
import * as path from 'node:path';
import { augmentBatch, batchIndices, type DecodedSplit } from '@dinoq/data';
import type { CropBatch, DinoTrainer, StepMetrics } from '@dinoq/dino';
import { commitLocalCheckpoint } from './local-layout';

export interface LoopOptions {
  trainer: DinoTrainer;
  split: DecodedSplit;
  /** Stop after this global step (exclusive); defaults to the end of the schedule. */
  untilStep?: number;
  /** Stop after this many minutes of training (checked between steps). */
  minutes?: number;
  runDir?: string;
  /** Commit a checkpoint every n steps (and always at the end). 0 = only at the end. */
  checkpointEvery?: number;
  onStep?: (m: StepMetrics & { dataWaitMs: number }) => void;
}

export interface LoopResult {
  steps: number;
  lastStep: number;
  metrics: StepMetrics[];
  checkpoints: string[];
}

async function makeBatch(trainer: DinoTrainer, split: DecodedSplit, step: number): Promise<CropBatch> {
  const { config } = trainer;
  const indices = batchIndices(split.count, config.train.batchSize, config.train.seed, step);
  const epoch = Math.floor(step / trainer.itersPerEpoch);
  return augmentBatch(split, indices, config.augment, { seed: config.train.seed, epoch });
}

/**
 * Trains step after step. The next batch is augmented while the current step computes, so
 * decoding never sits on the critical path unless it is slower than the step itself.
 */
export async function trainLoop(opts: LoopOptions): Promise<LoopResult> {
  const { trainer, split } = opts;
  const until = Math.min(opts.untilStep ?? trainer.totalSteps, trainer.totalSteps);
  const deadline = opts.minutes ? Date.now() + opts.minutes * 60_000 : Infinity;
  const metricsFile = opts.runDir ? path.join(opts.runDir, 'metrics.jsonl') : null;
  if (opts.runDir) fs.mkdirSync(opts.runDir, { recursive: true });
  const result: LoopResult = { steps: 0, lastStep: trainer.step, metrics: [], checkpoints: [] };
  let next = trainer.step < until ? makeBatch(trainer, split, trainer.step) : null;
  while (next && trainer.step < until && Date.now() < deadline) {
    const waitStart = performance.now();
    const batch = await next;
    const dataWaitMs = performance.now() - waitStart;
    const following = trainer.step + 1 < until ? makeBatch(trainer, split, trainer.step + 1) : null;
    // Yield once so the prefetch starts its thread-pool work before the synchronous step blocks.
    await new Promise((r) => setImmediate(r));
    const m = trainer.trainStep(batch);
    next = following;
    result.steps++;
    result.lastStep = m.step;
    result.metrics.push(m);
    if (metricsFile)
      fs.appendFileSync(
        metricsFile,
        JSON.stringify({ ...m, dataWaitMs, time: new Date().toISOString() }) + '\n',
      );
    opts.onStep?.({ ...m, dataWaitMs });
    const every = opts.checkpointEvery ?? 0;
    if (opts.runDir && every > 0 && trainer.step % every === 0 && trainer.step < until) {
      result.checkpoints.push(commitLocalCheckpoint(opts.runDir, trainer.step, trainer.checkpointFiles()));
    }
  }
  // A prefetch still in flight is awaited so no work is left running after return.
  if (next) await next.catch(() => undefined);
  if (opts.runDir && result.steps > 0) {
    result.checkpoints.push(commitLocalCheckpoint(opts.runDir, trainer.step, trainer.checkpointFiles()));
  }
  return result;
}
