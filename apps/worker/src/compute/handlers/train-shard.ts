import type { RunConfig } from '@dinoq/config';
import type { ReplicatedTrainer } from '@dinoq/dino';
import {
  measuredTrainFlopsPerSecond,
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
  isActive,
  planShard,
  recordCommit,
  type FollowUpShard,
  type ShardPlan,
} from '../../shard-plan';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import {
  describeSession,
  exportTeacher,
  openSession,
  readRun,
  runConfigOf,
  trainOrFail,
  type TrainingSession,
} from '../training-session';

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
  /** Training speed of the steps trained (measuredTrainFlopsPerSecond), which the worker announces. */
  trainFlopsPerSecond?: number | null;
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

function planOrFail(run: RunRecord, job: TrainShardJob, latest: number | null): ShardPlan {
  try {
    return planShard(run, job, latest);
  } catch (error) {
    throw new UnrecoverableJobError(`run ${job.runId}: ${(error as Error).message}`);
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
  const files =
    plan.resumeFrom === null ? null : (await work.artifacts.loadCheckpoint(plan.resumeFrom)).files;
  scope.throwIfAbandoned();
  const session = await openSession(ctx, run, work.config, { files, step: plan.startStep }, plan.toStep);
  try {
    logStart(work, session);
    const lines = await trainOrFail(ctx, scope, run, session, plan.toStep);
    const commit = await commitShard(work, session.trainer, lines);
    const last = lines[lines.length - 1];
    const updated = await ctx.runs.update(
      run.runId,
      recordCommit(plan.toStep, last, scope.job.workerId, ctx.backend.name),
    );
    const next = isActive(updated.status) ? afterCommit(updated, plan.toStep).next : null;
    if (plan.toStep >= updated.totalSteps) await exportTeacher(work.artifacts, work.config, commit.files);
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
      trainFlopsPerSecond: measuredTrainFlopsPerSecond(work.config, lines),
    };
  } finally {
    await session.close();
  }
}

function logStart(work: ShardWork, session: TrainingSession): void {
  const { ctx, scope, run, plan } = work;
  scope.log(
    'info',
    `run ${run.runId}: shard ${work.job.shard} trains steps ${session.trainer.step}..${plan.toStep - 1} ` +
      `(${plan.resumeFrom === null ? 'from the seed' : `from checkpoint ${plan.resumeFrom}`}) on ${ctx.backend.name}` +
      ` with ${describeSession(session)}`,
    { attempt: scope.job.attempt },
    true,
  );
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
