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
  type ReplicatedTrainer,
} from '@dinoq/dino';
import { exportBackbone } from '@dinoq/eval';
import {
  RunNotFoundError,
  stepMetricsLine,
  type RunRecord,
  type RunStatus,
  type StepMetricsLine,
  type TrainShardJob,
} from '@dinoq/jobs';
import { RunArtifacts, type CommitResult } from '@dinoq/storage';
import {
  afterCommit,
  cancelRun,
  catchUpWithCommits,
  claimRun,
  failRun,
  isActive,
  planShard,
  recordCommit,
  type FollowUpShard,
  type ShardPlan,
} from '../../shard-plan';
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

type Plan<K extends ShardPlan['kind']> = Extract<ShardPlan, { kind: K }>;

/** What every outcome shares: the job, and the newest commit the plan was made from. */
type ResultBase = Pick<TrainShardResult, 'runId' | 'shard' | 'committedStep' | 'stepsTrained'>;

/** What the shard works with once it decided to train. */
interface ShardWork {
  ctx: ComputeContext;
  scope: JobScope;
  artifacts: RunArtifacts;
  run: RunRecord;
  config: RunConfig;
  job: TrainShardJob;
  plan: Plan<'train'>;
}

/** The trainer and the augmentation threads of one shard, closed together. */
interface TrainingSession {
  trainer: ReplicatedTrainer;
  pool: AugmentPool | undefined;
  replicas: number;
  close(): Promise<void>;
}

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
  const artifacts = new RunArtifacts(ctx.store, job.runId);
  const run = await readRun(ctx, job.runId);
  const latest = await artifacts.newestCommit();
  const plan = planOrFail(run, job, latest);
  const base: ResultBase = { runId: job.runId, shard: job.shard, committedStep: latest, stepsTrained: 0 };
  switch (plan.kind) {
    case 'cancel':
      return cancel(ctx, scope, base);
    case 'skip':
      scope.log('info', `run ${job.runId}: shard ${job.shard} skipped (${plan.reason})`, {}, true);
      return { ...base, outcome: 'skipped', status: run.status, next: null, detail: plan.reason };
    case 'done':
      return confirmCommitted(ctx, scope, artifacts, base, plan);
    case 'train':
      return trainAndCommit({ ctx, scope, artifacts, run, config: runConfigOf(run), job, plan }, base);
  }
}

async function readRun(ctx: ComputeContext, runId: string): Promise<RunRecord> {
  try {
    return await ctx.runs.get(runId);
  } catch (error) {
    if (error instanceof RunNotFoundError) throw new UnrecoverableJobError(error.message);
    throw error;
  }
}

function planOrFail(run: RunRecord, job: TrainShardJob, latest: number | null): ShardPlan {
  try {
    return planShard(run, job, latest);
  } catch (error) {
    throw new UnrecoverableJobError(`run ${job.runId}: ${(error as Error).message}`);
  }
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

async function cancel(ctx: ComputeContext, scope: JobScope, base: ResultBase): Promise<TrainShardResult> {
  const updated = await ctx.runs.update(base.runId, cancelRun);
  scope.log('info', `run ${base.runId}: cancellation requested, shard ${base.shard} not started`, {}, true);
  return { ...base, outcome: 'cancelled', status: updated.status, next: null };
}

/** Storage holds this shard's commit already (a retry or a duplicate): only make sure the run moves on. */
async function confirmCommitted(
  ctx: ComputeContext,
  scope: JobScope,
  artifacts: RunArtifacts,
  base: ResultBase,
  plan: Plan<'done'>,
): Promise<TrainShardResult> {
  const committed = await artifacts.committedSteps();
  const updated = await ctx.runs.update(base.runId, catchUpWithCommits(plan, committed));
  scope.log(
    'info',
    `run ${base.runId}: shard ${base.shard} already committed (newest step ${plan.committedStep})`,
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

async function trainAndCommit(work: ShardWork, base: ResultBase): Promise<TrainShardResult> {
  const { ctx, scope, run, plan } = work;
  if (plan.gap) {
    scope.log(
      'warn',
      `run ${run.runId}: shard ${work.job.shard} starts at ${work.job.fromStep} but the newest commit is ` +
        `${plan.resumeFrom ?? 'none'}; training from step ${plan.startStep}`,
    );
  }
  const claim = claimRun(scope.job.workerId, ctx.backend.name);
  if (claim(run) !== null) await ctx.runs.update(run.runId, claim);
  const data = await trainingData(ctx, run);
  scope.throwIfAbandoned();

  const session = await openSession(work, data);
  try {
    logStart(work, session);
    const lines = await trainOrFail(work, session, data);
    const commit = await commitShard(work, session.trainer, lines);
    const last = lines[lines.length - 1];
    const updated = await ctx.runs.update(
      run.runId,
      recordCommit(plan.toStep, last, scope.job.workerId, ctx.backend.name),
    );
    const next = isActive(updated.status) ? afterCommit(updated, plan.toStep).next : null;
    if (plan.toStep >= updated.totalSteps) await exportTeacher(work, commit.files);
    scope.log(
      'info',
      `run ${run.runId}: committed step ${plan.toStep}${commit.result.alreadyCommitted ? ' (it was already committed)' : ''}; ` +
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
    await session.close();
  }
}

async function trainingData(ctx: ComputeContext, run: RunRecord): Promise<DecodedSplit> {
  const { data } = await ctx.datasets.split(run.datasetName, 'train', run.datasetSize);
  if (data.count !== run.datasetSize) {
    throw new UnrecoverableJobError(
      `run ${run.runId}: dataset "${run.datasetName}" has ${data.count} training images, the run was planned for ${run.datasetSize}`,
    );
  }
  return data;
}

async function openSession(work: ShardWork, data: DecodedSplit): Promise<TrainingSession> {
  const { ctx, run, config } = work;
  const replicas = resolveReplicas(ctx.trainReplicas, ctx.backend, config.train.batchSize);
  const dataThreads = resolveDataThreads(ctx.dataThreads, replicas);
  const pool = dataThreads > 0 ? AugmentPool.start(data, dataThreads) : undefined;
  let trainer: ReplicatedTrainer;
  try {
    trainer = await openTrainer(work, replicas);
  } catch (error) {
    await pool?.close();
    throw error;
  }
  const session: TrainingSession = {
    trainer,
    pool,
    replicas,
    close: async () => {
      await Promise.all([trainer.dispose(), pool?.close()]);
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

async function openTrainer(work: ShardWork, replicas: number): Promise<ReplicatedTrainer> {
  const { ctx, run, config, artifacts } = work;
  const { resumeFrom } = work.plan;
  // Replica threads select the backend this process runs on; one replica trains in this thread.
  const options = { replicas, backend: ctx.backend.name };
  if (resumeFrom === null) return DataParallelTrainer.create(config, run.datasetSize, options);
  const checkpoint = await artifacts.loadCheckpoint(resumeFrom);
  const trainer = await DataParallelTrainer.restore(config, run.datasetSize, checkpoint.files, options);
  if (trainer.step !== resumeFrom) {
    await trainer.dispose();
    throw new UnrecoverableJobError(
      `run ${run.runId}: checkpoint ${resumeFrom} says it is at step ${trainer.step}`,
    );
  }
  return trainer;
}

function logStart(work: ShardWork, session: TrainingSession): void {
  const { ctx, scope, run, plan } = work;
  const { replicas, pool } = session;
  const threads = pool?.threads ?? 0;
  scope.log(
    'info',
    `run ${run.runId}: shard ${work.job.shard} trains steps ${session.trainer.step}..${plan.toStep - 1} ` +
      `(${plan.resumeFrom === null ? 'from the seed' : `from checkpoint ${plan.resumeFrom}`}) on ${ctx.backend.name}` +
      ` with ${replicas} replica${replicas > 1 ? 's' : ''} and ` +
      `${threads === 0 ? 'augmentation on the main thread' : `${threads} augmentation thread${threads > 1 ? 's' : ''}`}`,
    { attempt: scope.job.attempt },
    true,
  );
}

/** A non-finite loss fails the run for good; its last commit stays. */
async function trainOrFail(
  work: ShardWork,
  session: TrainingSession,
  data: DecodedSplit,
): Promise<StepMetricsLine[]> {
  try {
    return await trainSteps(session, data, work.plan.toStep, work.scope);
  } catch (error) {
    if (error instanceof NonFiniteLossError) {
      await work.ctx.runs.update(work.run.runId, failRun(error.message, work.scope.job.workerId));
      throw new UnrecoverableJobError(`run ${work.run.runId}: ${error.message}`);
    }
    throw error;
  }
}

/**
 * Trains up to (not including) `toStep`. The next batch is augmented while the current step runs;
 * the abandon request is honoured only between steps, where the state is whole.
 */
async function trainSteps(
  session: TrainingSession,
  data: DecodedSplit,
  toStep: number,
  scope: JobScope,
): Promise<StepMetricsLine[]> {
  const { trainer, pool } = session;
  const { config } = trainer;
  const sampling = { seed: config.train.seed, batchSize: config.train.batchSize, pool };
  const lines: StepMetricsLine[] = [];
  await runSteps({
    trainer,
    toStep,
    batchFor: (step: number): Promise<TrainingBatch> => trainingBatch(data, config.augment, sampling, step),
    beforeStep: () => scope.throwIfAbandoned(),
    onStep: (metrics) => {
      lines.push(stepMetricsLine(metrics, pool?.threads ?? 0));
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

/** Metrics first: a commit is only ever visible together with the lines that explain it. */
async function commitShard(
  work: ShardWork,
  trainer: ReplicatedTrainer,
  lines: StepMetricsLine[],
): Promise<{ result: CommitResult; files: Record<string, Uint8Array> }> {
  await work.artifacts.writeShardMetrics(work.job.shard, lines);
  const files = await trainer.checkpointFiles();
  return { result: await work.artifacts.commitCheckpoint(work.plan.toStep, files), files };
}

/** The finished run's teacher backbone under the reference names, ready for PyTorch tools. */
async function exportTeacher(work: ShardWork, files: Record<string, Uint8Array>): Promise<void> {
  const teacher = networkParams(work.config, files, 'teacher');
  try {
    await work.artifacts.writeBackbone(exportBackbone(teacher, work.config));
  } finally {
    disposeParams(teacher);
  }
}
