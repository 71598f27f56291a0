import { ConfigError, parseRunConfig, type RunConfig } from '@dinoq/config';
import { resolveDataThreads } from '@dinoq/data';
import {
  DataParallelTrainer,
  disposeParams,
  networkParams,
  NonFiniteLossError,
  resolveReplicas,
  runSteps,
  type ReplicatedTrainer,
  type StepLane,
} from '@dinoq/dino';
import { exportBackbone } from '@dinoq/eval';
import {
  RunNotFoundError,
  stepMetricsLine,
  type RunRecord,
  type StepMetricsLine,
  type TrainingProgress,
} from '@dinoq/jobs';
import type { RunArtifacts } from '@dinoq/storage';
import { failRun } from '../shard-plan';
import type { ComputeContext, JobScope } from './job-scope';
import { UnrecoverableJobError } from './protocol';
import { describeDataChoice, openBatches, type BatchSource } from './training-data';

/*
 * What every training job (a shard, a round's slice) does around its steps: read the run and its
 * data, open the trainer and the augmentation threads, train with metrics and the abandon check,
 * fail the run on a non-finite loss, export the teacher once the run is finished.
 */

/** The trainer and the batches of one job, closed together. */
export interface TrainingSession {
  trainer: ReplicatedTrainer;
  batches: BatchSource;
  replicas: number;
  close(): Promise<void>;
}

/** Where a job's trainer starts: the seed or checkpoint files, and optionally a slice's lane. */
export interface TrainerStart {
  files: Record<string, Uint8Array> | null;
  /** The step the files are at (0 from the seed), checked against what the trainer reads. */
  step: number;
  lane?: StepLane;
}

export async function readRun(ctx: ComputeContext, runId: string): Promise<RunRecord> {
  try {
    return await ctx.runs.get(runId);
  } catch (error) {
    if (error instanceof RunNotFoundError) throw new UnrecoverableJobError(error.message);
    throw error;
  }
}

export function runConfigOf(run: RunRecord): RunConfig {
  try {
    return parseRunConfig(run.config);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UnrecoverableJobError(`run ${run.runId}: stored config is invalid: ${error.message}`);
    }
    throw error;
  }
}

/**
 * Opens the job's batches (held in memory or streamed: see training-data.ts) and its trainer, which
 * trains the steps of `start.lane` (every step from `start.step` without one) below `toStep`.
 */
export async function openSession(
  ctx: ComputeContext,
  run: RunRecord,
  config: RunConfig,
  start: TrainerStart,
  toStep: number,
): Promise<TrainingSession> {
  const replicas = resolveReplicas(ctx.trainReplicas, ctx.backend, config.train.batchSize);
  const dataThreads = resolveDataThreads(ctx.dataThreads, replicas);
  const lane = start.lane ?? { start: start.step, stride: 1 };
  const batches = await openBatches(
    ctx,
    run,
    { augment: config.augment, seed: config.train.seed, batchSize: config.train.batchSize },
    { fromStep: lane.start, toStep, stride: lane.stride },
    dataThreads,
  );
  let trainer: ReplicatedTrainer;
  try {
    trainer = await openTrainer(ctx, run, config, start, replicas);
  } catch (error) {
    await batches.close();
    throw error;
  }
  const session: TrainingSession = {
    trainer,
    batches,
    replicas,
    close: async () => {
      await Promise.all([trainer.dispose(), batches.close()]);
    },
  };
  if (trainer.totalSteps !== run.totalSteps) {
    await session.close();
    throw new UnrecoverableJobError(
      `run ${run.runId}: the config gives ${trainer.totalSteps} steps, run.json plans ${run.totalSteps}`,
    );
  }
  return session;
}

async function openTrainer(
  ctx: ComputeContext,
  run: RunRecord,
  config: RunConfig,
  start: TrainerStart,
  replicas: number,
): Promise<ReplicatedTrainer> {
  // Replica threads select the backend this process runs on; one replica trains in this thread.
  const options = { replicas, backend: ctx.backend.name, lane: start.lane };
  if (start.files === null) return DataParallelTrainer.create(config, run.datasetSize, options);
  const trainer = await DataParallelTrainer.restore(config, run.datasetSize, start.files, options);
  const expected = start.lane?.start ?? start.step;
  if (trainer.step !== expected) {
    await trainer.dispose();
    throw new UnrecoverableJobError(
      `run ${run.runId}: checkpoint ${start.step} puts the trainer at step ${trainer.step}, expected ${expected}`,
    );
  }
  return trainer;
}

/** "2 replicas and 1 augmentation thread, data streamed (why)", for the line a job logs when it starts. */
export function describeSession(session: TrainingSession): string {
  const { replicas, batches } = session;
  const { threads, choice } = batches;
  return (
    `${replicas} replica${replicas > 1 ? 's' : ''} and ` +
    `${threads === 0 ? 'augmentation on the main thread' : `${threads} augmentation thread${threads > 1 ? 's' : ''}`}, ` +
    describeDataChoice(choice)
  );
}

/** Trains the session's steps below `toStep`; a non-finite loss fails the run for good, its last commit stays. */
export async function trainOrFail(
  ctx: ComputeContext,
  scope: JobScope,
  run: RunRecord,
  session: TrainingSession,
  toStep: number,
): Promise<StepMetricsLine[]> {
  try {
    return await trainSteps(session, toStep, scope);
  } catch (error) {
    if (error instanceof NonFiniteLossError) {
      await ctx.runs.update(run.runId, failRun(error.message, scope.job.workerId));
      throw new UnrecoverableJobError(`run ${run.runId}: ${error.message}`);
    }
    throw error;
  }
}

/**
 * Trains the trainer's steps below `toStep`. The next batch is augmented while the current step
 * runs; the abandon request is honoured only between steps, where the state is whole.
 */
async function trainSteps(
  session: TrainingSession,
  toStep: number,
  scope: JobScope,
): Promise<StepMetricsLine[]> {
  const { trainer, batches } = session;
  const lines: StepMetricsLine[] = [];
  let warned = 0;
  await runSteps({
    trainer,
    toStep,
    batchFor: (step) => batches.batchFor(step),
    beforeStep: () => scope.throwIfAbandoned(),
    onStep: (metrics) => {
      const skipped = batches.skipped();
      if (skipped.images + skipped.shards > warned) {
        warned = skipped.images + skipped.shards;
        scope.log('warn', `unusable data skipped: ${skipped.reasons.slice(-3).join('; ')}`, {
          skippedImages: skipped.images,
          skippedShards: skipped.shards,
        });
      }
      const line = stepMetricsLine(
        {
          ...metrics,
          dataMode: batches.choice.mode,
          ...(skipped.images + skipped.shards > 0
            ? { skippedImages: skipped.images, skippedShards: skipped.shards }
            : {}),
        },
        batches.threads,
      );
      lines.push(line);
      // The whole line, so dashboards draw every curve live, not only at the shard's commit.
      const progress: TrainingProgress = {
        step: metrics.step,
        toStep,
        loss: metrics.loss,
        imagesPerSecond: metrics.imagesPerSecond,
        metrics: line,
      };
      scope.progress({ ...progress });
    },
  });
  return lines;
}

/** The finished run's teacher backbone under the reference names, ready for PyTorch tools. */
export async function exportTeacher(
  artifacts: RunArtifacts,
  config: RunConfig,
  files: Record<string, Uint8Array>,
): Promise<void> {
  const teacher = networkParams(config, files, 'teacher');
  try {
    await artifacts.writeBackbone(exportBackbone(teacher, config));
  } finally {
    disposeParams(teacher);
  }
}
