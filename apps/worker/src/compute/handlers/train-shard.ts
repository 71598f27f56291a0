import { ConfigError, parseRunConfig, type RunConfig } from '@dinoq/config';
import {
  AugmentPool,
  resolveDataThreads,
  trainingBatch,
  type DecodedSplit,
  type TrainingBatch,
} from '@dinoq/data';
import {
  DataParallelTrainer,
  disposeParams,
  networkParams,
  NonFiniteLossError,
  resolveReplicas,
  runSteps,
  type LoopStepMetrics,
  type ReplicatedTrainer,
} from '@dinoq/dino';
import { RunNotFoundError, type RunRecord, type RunStatus, type TrainShardJob } from '@dinoq/jobs';
import {
  backboneExportKey,
  commitCheckpoint,
  latestCommitted,
  listCommitted,
  loadCheckpoint,
  metricsKey,
} from '@dinoq/storage';
import { exportBackbone } from '@dinoq/eval';
import { afterCommit, planShard, withCommittedStep, type FollowUpShard } from '../../shard-plan';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';

export interface TrainShardResult {
  outcome: 'trained' | 'already-committed' | 'cancelled' | 'skipped';
  runId: string;
  shard: number;
  /** The newest committed step once the job is done (null: nothing committed yet). */
  committedStep: number | null;
  status: RunStatus;
  /** The shard to queue next; the parent enqueues it under its deterministic job id. */
  next: FollowUpShard | null;
  stepsTrained: number;
  detail?: string;
}

/** One line of runs/<id>/metrics/<shard>.jsonl. */
export interface StepMetricsLine {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  weightDecay: number;
  momentum: number;
  teacherTemp: number;
  teacherEntropy: number;
  klTeacherStudent: number;
  maxGradNorm: number;
  imagesPerSecond: number;
  stepMs: number;
  /** How long the step waited for its batch (zero when the data pipeline kept ahead). */
  dataWaitMs: number;
  /** Busy time of the data pipeline (decode + multi-crop) for this step's batch, on one thread. */
  dataMs: number;
  /** Threads the data pipeline had (0: it shared the main thread with the step's coordination). */
  dataThreads: number;
  replicas: number;
  backend: string;
  numTensors: number;
  time: string;
}

function metricsLine(m: LoopStepMetrics, dataThreads: number): StepMetricsLine {
  return {
    step: m.step,
    epoch: m.epoch,
    loss: m.loss,
    lr: m.lr,
    weightDecay: m.weightDecay,
    momentum: m.momentum,
    teacherTemp: m.teacherTemp,
    teacherEntropy: m.teacherEntropy,
    klTeacherStudent: m.klTeacherStudent,
    maxGradNorm: m.maxGradNorm,
    imagesPerSecond: m.imagesPerSecond,
    stepMs: m.stepMs,
    dataWaitMs: m.dataWaitMs,
    dataMs: m.dataMs,
    dataThreads,
    replicas: m.replicas,
    backend: m.backend,
    numTensors: m.numTensors,
    time: new Date().toISOString(),
  };
}

function runConfigOf(run: RunRecord): RunConfig {
  try {
    return parseRunConfig(run.config);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UnrecoverableJobError(`run ${run.runId}: stored config is invalid: ${error.message}`);
    }
    throw error;
  }
}

const isActive = (status: RunStatus) => status === 'queued' || status === 'running';

/**
 * A training shard: restore the newest commit (or initialise from the seed), train up to toStep,
 * write the shard's metrics, commit the checkpoint, update run.json. Nothing is committed unless
 * every step of the shard ran, so an abandoned or killed shard leaves the previous commit as the
 * newest one and its retry replays the same batches from there.
 */
export async function trainShard(
  ctx: ComputeContext,
  scope: JobScope,
  job: TrainShardJob,
): Promise<TrainShardResult> {
  const { runId, shard } = job;
  const workerId = scope.job.workerId;
  let run: RunRecord;
  try {
    run = await ctx.runs.get(runId);
  } catch (error) {
    if (error instanceof RunNotFoundError) throw new UnrecoverableJobError(error.message);
    throw error;
  }
  const latest = await latestCommitted(ctx.store, runId);
  let plan;
  try {
    plan = planShard(run, job, latest);
  } catch (error) {
    throw new UnrecoverableJobError(`run ${runId}: ${(error as Error).message}`);
  }
  const base = { runId, shard, committedStep: latest, stepsTrained: 0 };

  if (plan.kind === 'cancel') {
    const updated = await ctx.runs.update(runId, (r) => (isActive(r.status) ? { status: 'cancelled' } : {}));
    scope.log('info', `run ${runId}: cancellation requested, shard ${shard} not started`, {}, true);
    return { ...base, outcome: 'cancelled', status: updated.status, next: null };
  }
  if (plan.kind === 'skip') {
    scope.log('info', `run ${runId}: shard ${shard} skipped (${plan.reason})`, {}, true);
    return { ...base, outcome: 'skipped', status: run.status, next: null, detail: plan.reason };
  }
  if (plan.kind === 'done') {
    const committed = await listCommitted(ctx.store, runId);
    const updated = await ctx.runs.update(runId, (r) => ({
      lastCommittedStep: Math.max(r.lastCommittedStep ?? 0, plan.committedStep),
      committedSteps: committed.reduce(withCommittedStep, r.committedSteps),
      status: isActive(r.status) ? plan.status : r.status,
    }));
    scope.log(
      'info',
      `run ${runId}: shard ${shard} already committed (newest step ${plan.committedStep})`,
      {},
      true,
    );
    return {
      ...base,
      outcome: 'already-committed',
      status: updated.status,
      next: isActive(updated.status) ? plan.next : null,
    };
  }

  const config = runConfigOf(run);
  if (plan.gap) {
    scope.log(
      'warn',
      `run ${runId}: shard ${shard} starts at ${job.fromStep} but the newest commit is ` +
        `${plan.resumeFrom ?? 'none'}; training from step ${plan.startStep}`,
    );
  }
  // Every run.json write is a compare-and-swap on its ETag; skipping writes that change nothing
  // keeps the API's writers (cancel, resume) from retrying against this one for no reason.
  if (run.status === 'queued' || run.workerId !== workerId || run.backend !== ctx.backend.name) {
    await ctx.runs.update(runId, (r) => ({
      status: r.status === 'queued' ? 'running' : r.status,
      workerId,
      backend: ctx.backend.name,
    }));
  }

  const { data } = await ctx.datasets.split(run.datasetName, 'train', run.datasetSize);
  if (data.count !== run.datasetSize) {
    throw new UnrecoverableJobError(
      `run ${runId}: dataset "${run.datasetName}" has ${data.count} training images, the run was planned for ${run.datasetSize}`,
    );
  }
  scope.throwIfAbandoned();

  const replicas = resolveReplicas(ctx.trainReplicas, ctx.backend, config.train.batchSize);
  const dataThreads = resolveDataThreads(ctx.dataThreads, replicas);
  const pool = dataThreads > 0 ? AugmentPool.start(data, dataThreads) : undefined;
  let trainer: ReplicatedTrainer;
  try {
    trainer = await openTrainer(ctx, runId, config, run.datasetSize, plan.resumeFrom, replicas);
  } catch (error) {
    await pool?.close();
    throw error;
  }
  try {
    if (trainer.totalSteps !== run.totalSteps) {
      throw new UnrecoverableJobError(
        `run ${runId}: the config gives ${trainer.totalSteps} steps, run.json plans ${run.totalSteps}`,
      );
    }
    scope.log(
      'info',
      `run ${runId}: shard ${shard} trains steps ${trainer.step}..${plan.toStep - 1} ` +
        `(${plan.resumeFrom === null ? 'from the seed' : `from checkpoint ${plan.resumeFrom}`}) on ${ctx.backend.name}` +
        ` with ${replicas} replica${replicas > 1 ? 's' : ''} and ` +
        `${dataThreads === 0 ? 'augmentation on the main thread' : `${dataThreads} augmentation thread${dataThreads > 1 ? 's' : ''}`}`,
      { attempt: scope.job.attempt },
      true,
    );
    let lines: StepMetricsLine[];
    try {
      lines = await trainSteps(trainer, data, plan.toStep, scope, pool);
    } catch (error) {
      if (error instanceof NonFiniteLossError) {
        await ctx.runs.update(runId, () => ({ status: 'failed', error: error.message, workerId }));
        throw new UnrecoverableJobError(`run ${runId}: ${error.message}`);
      }
      throw error;
    }

    // Metrics first: a commit is only ever visible together with the lines that explain it.
    const body = lines.map((line) => JSON.stringify(line)).join('\n') + '\n';
    await ctx.store.putBytes(
      metricsKey(runId, shard),
      new TextEncoder().encode(body),
      'application/x-ndjson',
    );
    const files = await trainer.checkpointFiles();
    const commit = await commitCheckpoint(ctx.store, runId, plan.toStep, files);
    const last = lines[lines.length - 1];
    const updated = await ctx.runs.update(runId, (r) => ({
      lastCommittedStep: Math.max(r.lastCommittedStep ?? 0, plan.toStep),
      committedSteps: withCommittedStep(r.committedSteps, plan.toStep),
      latestMetrics: { ...last },
      backend: ctx.backend.name,
      workerId,
      status: isActive(r.status) ? afterCommit(r, plan.toStep).status : r.status,
      error: null,
    }));
    const next = isActive(updated.status) ? afterCommit(updated, plan.toStep).next : null;
    if (plan.toStep >= updated.totalSteps) {
      // The finished run's teacher backbone under the reference names, ready for PyTorch tools.
      const teacher = networkParams(config, files, 'teacher');
      try {
        await ctx.store.putBytes(
          backboneExportKey(runId),
          exportBackbone(teacher, config),
          'application/octet-stream',
        );
      } finally {
        disposeParams(teacher);
      }
    }
    scope.log(
      'info',
      `run ${runId}: committed step ${plan.toStep}${commit.alreadyCommitted ? ' (it was already committed)' : ''}; ` +
        `run ${updated.status}${next ? `, next shard ${next.shard}` : ''}`,
      { loss: last.loss, imagesPerSecond: last.imagesPerSecond },
      true,
    );
    return {
      ...base,
      outcome: 'trained',
      committedStep: plan.toStep,
      status: updated.status,
      next,
      stepsTrained: lines.length,
    };
  } finally {
    await Promise.all([trainer.dispose(), pool?.close()]);
  }
}

async function openTrainer(
  ctx: ComputeContext,
  runId: string,
  config: RunConfig,
  datasetSize: number,
  resumeFrom: number | null,
  replicas: number,
): Promise<ReplicatedTrainer> {
  // Replica threads select the backend this process runs on; one replica trains in this thread.
  const options = { replicas, backend: ctx.backend.name };
  if (resumeFrom === null) return DataParallelTrainer.create(config, datasetSize, options);
  const checkpoint = await loadCheckpoint(ctx.store, runId, resumeFrom);
  const trainer = await DataParallelTrainer.restore(config, datasetSize, checkpoint.files, options);
  if (trainer.step !== resumeFrom) {
    await trainer.dispose();
    throw new UnrecoverableJobError(
      `run ${runId}: checkpoint ${resumeFrom} says it is at step ${trainer.step}`,
    );
  }
  return trainer;
}

/**
 * Trains up to (not including) `toStep`. The next batch is augmented while the current step runs;
 * the abandon request is honoured only between steps, where the state is whole.
 */
async function trainSteps(
  trainer: ReplicatedTrainer,
  data: DecodedSplit,
  toStep: number,
  scope: JobScope,
  pool: AugmentPool | undefined,
): Promise<StepMetricsLine[]> {
  const { config } = trainer;
  const sampling = { seed: config.train.seed, batchSize: config.train.batchSize, pool };
  const lines: StepMetricsLine[] = [];
  await runSteps({
    trainer,
    toStep,
    batchFor: (step: number): Promise<TrainingBatch> => trainingBatch(data, config.augment, sampling, step),
    beforeStep: () => scope.throwIfAbandoned(),
    onStep: (metrics) => {
      lines.push(metricsLine(metrics, pool?.threads ?? 0));
      scope.progress({
        step: metrics.step,
        toStep,
        loss: metrics.loss,
        imagesPerSecond: metrics.imagesPerSecond,
      });
    },
  });
  return lines;
}
