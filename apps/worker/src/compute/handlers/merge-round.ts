import type { RunConfig } from '@dinoq/config';
import { DinoTrainer, mergeRound as mergeCheckpoints, OUTER_STATE_FILE } from '@dinoq/dino';
import {
  roundContinuation,
  type MergeRoundJob,
  type RoundContinuation,
  type RunRecord,
  type RunStatus,
} from '@dinoq/jobs';
import { RunArtifacts } from '@dinoq/storage';
import { planMerge, recordRoundCommit } from '../../round-plan';
import { cancelRun, isActive } from '../../shard-plan';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import { exportTeacher, readRun, runConfigOf } from '../training-session';

export interface MergeRoundResult {
  outcome: 'merged' | 'already-committed' | 'cancelled' | 'skipped';
  runId: string;
  status: RunStatus;
  /** The next round's flow; the worker process adds it under its deterministic ids. */
  next: RoundContinuation | null;
  /** Time spent reading the slices' results, merging and committing. */
  mergeMs: number;
  /** Bytes read (the round's start and every slice's result) and written (the merged checkpoint). */
  bytesRead: number;
  bytesWritten: number;
  detail?: string;
}

const describeRound = (job: MergeRoundJob) => `round ${job.fromStep}..${job.toStep} (${job.slices} slices)`;

/**
 * The parent of a round's flow, run once every slice has committed: read the slices' results and
 * the round's start, apply the DiLoCo merge (libs/dino/src/diloco.ts), commit the checkpoint at the
 * round's end (COMMITTED last), update run.json and hand back the next round. A round that is
 * committed already only makes sure the run moves on, so a retried or duplicated merge is a no-op.
 */
export async function mergeRound(
  ctx: ComputeContext,
  scope: JobScope,
  job: MergeRoundJob,
): Promise<MergeRoundResult> {
  const artifacts = new RunArtifacts(ctx.store, job.runId);
  const run = await readRun(ctx, job.runId);
  const latest = await artifacts.newestCommit();
  let plan;
  try {
    plan = planMerge(run, job, latest);
  } catch (error) {
    throw new UnrecoverableJobError(`run ${job.runId}: ${(error as Error).message}`);
  }
  const base = { runId: job.runId, next: null, mergeMs: 0, bytesRead: 0, bytesWritten: 0 };
  switch (plan.kind) {
    case 'cancel': {
      const updated = await ctx.runs.update(job.runId, cancelRun);
      scope.log(
        'info',
        `run ${job.runId}: cancellation requested, ${describeRound(job)} not merged`,
        {},
        true,
      );
      return { ...base, outcome: 'cancelled', status: updated.status };
    }
    case 'skip':
      scope.log(
        'info',
        `run ${job.runId}: merge of ${describeRound(job)} skipped (${plan.reason})`,
        {},
        true,
      );
      return { ...base, outcome: 'skipped', status: run.status, detail: plan.reason };
    case 'done':
      return confirmMerged(ctx, scope, artifacts, job, latest ?? job.toStep);
    case 'merge':
      return mergeAndCommit(ctx, scope, artifacts, run, job, plan.startFrom);
  }
}

async function confirmMerged(
  ctx: ComputeContext,
  scope: JobScope,
  artifacts: RunArtifacts,
  job: MergeRoundJob,
  committedStep: number,
): Promise<MergeRoundResult> {
  const committed = await artifacts.committedSteps();
  const updated = await ctx.runs.update(
    job.runId,
    recordRoundCommit(committedStep, scope.job.workerId, ctx.backend.name, committed),
  );
  await artifacts.dropRound(job.fromStep);
  scope.log(
    'info',
    `run ${job.runId}: ${describeRound(job)} already merged (newest step ${committedStep})`,
    {},
    true,
  );
  return {
    outcome: 'already-committed',
    runId: job.runId,
    status: updated.status,
    next: isActive(updated.status) ? roundContinuation(updated, committedStep) : null,
    mergeMs: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };
}

async function mergeAndCommit(
  ctx: ComputeContext,
  scope: JobScope,
  artifacts: RunArtifacts,
  run: RunRecord,
  job: MergeRoundJob,
  startFrom: number | null,
): Promise<MergeRoundResult> {
  const started = performance.now();
  const config = runConfigOf(run);
  const [start, ...slices] = await Promise.all([
    roundStart(artifacts, run, config, startFrom),
    ...Array.from({ length: job.slices }, (_, slice) => sliceResult(artifacts, job, slice)),
  ]);
  scope.throwIfAbandoned();
  const files = mergeCheckpoints({
    start,
    slices,
    outer: config.parallel.outer,
    step: job.toStep,
    epoch: Math.floor(job.toStep / run.itersPerEpoch),
  });
  const commit = await artifacts.commitCheckpoint(job.toStep, files);
  const updated = await ctx.runs.update(
    run.runId,
    recordRoundCommit(job.toStep, scope.job.workerId, ctx.backend.name),
  );
  if (job.toStep >= updated.totalSteps) await exportTeacher(artifacts, config, files);
  await artifacts.dropRound(job.fromStep);
  const mergeMs = performance.now() - started;
  const next = isActive(updated.status) ? roundContinuation(updated, job.toStep) : null;
  const bytesRead = [start, ...slices].reduce((sum, f) => sum + filesBytes(f), 0);
  const bytesWritten = filesBytes(files);
  scope.log(
    'info',
    `run ${run.runId}: merged ${describeRound(job)} into step ${job.toStep}` +
      `${commit.alreadyCommitted ? ' (it was already committed)' : ''}; run ${updated.status}` +
      `${next ? `, next round ${next.data.fromStep}..${next.data.toStep} with ${next.data.slices} slices` : ''}`,
    { mergeMs: Math.round(mergeMs), bytesRead, bytesWritten },
    true,
  );
  return {
    outcome: 'merged',
    runId: run.runId,
    status: updated.status,
    next,
    mergeMs,
    bytesRead,
    bytesWritten,
  };
}

/** θ_r: the committed checkpoint the round started from, or the seed's initial state for the first round. */
async function roundStart(
  artifacts: RunArtifacts,
  run: RunRecord,
  config: RunConfig,
  startFrom: number | null,
): Promise<Record<string, Uint8Array>> {
  if (startFrom !== null) {
    const commit = await artifacts.checkpointCommit(startFrom);
    const wanted = ['student.safetensors', ...(commit?.files[OUTER_STATE_FILE] ? [OUTER_STATE_FILE] : [])];
    return (await artifacts.loadCheckpoint(startFrom, wanted)).files;
  }
  const initial = DinoTrainer.create(config, run.datasetSize);
  try {
    return { 'student.safetensors': initial.checkpointFiles()['student.safetensors'] };
  } finally {
    initial.dispose();
  }
}

async function sliceResult(artifacts: RunArtifacts, job: MergeRoundJob, slice: number) {
  const of = { ...job, slice };
  if ((await artifacts.sliceResultCommit(of)) === null) {
    throw new Error(`run ${job.runId}: slice ${slice} of ${describeRound(job)} has no committed result`);
  }
  return (await artifacts.loadSliceResult(of)).files;
}

function filesBytes(files: Record<string, Uint8Array>): number {
  return Object.values(files).reduce((sum, bytes) => sum + bytes.byteLength, 0);
}
