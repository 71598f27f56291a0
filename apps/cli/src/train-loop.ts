import { trainingBatch, type AugmentPool, type DecodedSplit, type SampleOrder } from '@dinoq/data';
import { runSteps, type LoopStepMetrics, type ReplicatedTrainer } from '@dinoq/dino';
import { stepMetricsLine, type StepMetricsLine } from '@dinoq/jobs';
import type { RunArtifacts } from '@dinoq/storage';

export interface LoopOptions {
  trainer: ReplicatedTrainer;
  split: DecodedSplit;
  /** Augmentation threads holding `split`'s images; without one, batches are made on this thread. */
  pool?: AugmentPool;
  /** The split's sample order; default a full shuffle per epoch (sampler.ts). */
  order?: SampleOrder;
  /** Stop after this global step (exclusive); defaults to the end of the schedule. */
  untilStep?: number;
  /** Stop after this many minutes of training (checked between steps). */
  minutes?: number;
  /** Where metrics and checkpoints go; without it nothing is written. */
  artifacts?: RunArtifacts;
  /** Commit a checkpoint every n steps (and always at the end). 0 = only at the end. */
  checkpointEvery?: number;
  /** Called after every step, and awaited: the next step starts when it settles. */
  onStep?: (m: LoopStepMetrics) => void | Promise<void>;
}

export interface LoopResult {
  steps: number;
  lastStep: number;
  metrics: LoopStepMetrics[];
  /** The steps committed, in order. */
  checkpoints: number[];
}

/**
 * Trains locally. Each commit writes the metrics of the steps since the previous one first, then
 * the checkpoint, as a worker's shard does; a run that fails (a non-finite loss) still writes the
 * metrics of the steps it trained, without a commit.
 */
export async function trainLoop(opts: LoopOptions): Promise<LoopResult> {
  const { trainer, split, artifacts } = opts;
  const { config } = trainer;
  const until = Math.min(opts.untilStep ?? trainer.totalSteps, trainer.totalSteps);
  const deadline = opts.minutes ? Date.now() + opts.minutes * 60_000 : Infinity;
  const result: LoopResult = { steps: 0, lastStep: trainer.step, metrics: [], checkpoints: [] };
  const every = opts.checkpointEvery ?? 0;
  const sampling = {
    seed: config.train.seed,
    batchSize: config.train.batchSize,
    pool: opts.pool,
    order: opts.order,
  };
  let pending: StepMetricsLine[] = [];
  let fromStep = trainer.step;
  const writeMetrics = () =>
    pending.length > 0 ? artifacts?.writeStepsMetrics(fromStep, pending) : undefined;
  const commit = async () => {
    if (!artifacts || pending.length === 0) return;
    await writeMetrics();
    await artifacts.commitCheckpoint(trainer.step, await trainer.checkpointFiles());
    result.checkpoints.push(trainer.step);
    pending = [];
    fromStep = trainer.step;
  };
  try {
    result.steps = await runSteps({
      trainer,
      toStep: until,
      batchFor: (step) => trainingBatch(split, config.augment, sampling, step),
      onStep: async (m) => {
        result.lastStep = m.step;
        result.metrics.push(m);
        pending.push(stepMetricsLine(m, opts.pool?.threads ?? 0));
        await opts.onStep?.(m);
        if (every > 0 && trainer.step % every === 0 && trainer.step < until) await commit();
        return Date.now() < deadline;
      },
    });
  } catch (error) {
    await writeMetrics();
    throw error;
  }
  await commit();
  return result;
}
