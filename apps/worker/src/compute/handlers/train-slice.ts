import { measuredTrainFlopsPerSecond, type RunRecord, type RunStatus, type TrainSliceJob } from '@dinoq/jobs';
import { RunArtifacts } from '@dinoq/storage';
import { planSlice, recordSliceDone } from '../../round-plan';
import { cancelRun, claimRun } from '../../shard-plan';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import { describeSession, openSession, readRun, runConfigOf, trainOrFail } from '../training-session';

export interface TrainSliceResult {
  outcome: 'trained' | 'already-committed' | 'cancelled' | 'skipped';
  runId: string;
  slice: number;
  status: RunStatus;
  stepsTrained: number;
  /** Training speed of the steps trained (measuredTrainFlopsPerSecond), which the worker announces. */
  trainFlopsPerSecond?: number | null;
  detail?: string;
}

/** Names the slice in logs and errors: "slice 1 of 2 of round 100..200". */
export function describeSlice(job: TrainSliceJob): string {
  return `slice ${job.slice} of ${job.slices} of round ${job.fromStep}..${job.toStep}`;
}

/**
 * One slice of a DiLoCo round: from the round's starting checkpoint (or the seed), train the
 * slice's lane of the round's steps (fromStep + slice, + slices, …), then commit the result under
 * the round's folder for the merge. Nothing is committed unless every step ran, so a retried slice
 * starts again from the round's start and replays the same batches.
 */
export async function trainSlice(
  ctx: ComputeContext,
  scope: JobScope,
  job: TrainSliceJob,
): Promise<TrainSliceResult> {
  const artifacts = new RunArtifacts(ctx.store, job.runId);
  const run = await readRun(ctx, job.runId);
  const [latest, result] = await Promise.all([artifacts.newestCommit(), artifacts.sliceResultCommit(job)]);
  let plan;
  try {
    plan = planSlice(run, job, latest, result !== null);
  } catch (error) {
    throw new UnrecoverableJobError(`run ${job.runId}: ${(error as Error).message}`);
  }
  const base = { runId: job.runId, slice: job.slice, stepsTrained: 0 };
  switch (plan.kind) {
    case 'cancel': {
      const updated = await ctx.runs.update(job.runId, cancelRun);
      scope.log(
        'info',
        `run ${job.runId}: cancellation requested, ${describeSlice(job)} not started`,
        {},
        true,
      );
      return { ...base, outcome: 'cancelled', status: updated.status };
    }
    case 'skip':
      scope.log('info', `run ${job.runId}: ${describeSlice(job)} skipped (${plan.reason})`, {}, true);
      return { ...base, outcome: 'skipped', status: run.status, detail: plan.reason };
    case 'done': {
      const updated = await ctx.runs.update(job.runId, recordSliceDone(job, null));
      scope.log('info', `run ${job.runId}: ${describeSlice(job)} already committed`, {}, true);
      return { ...base, outcome: 'already-committed', status: updated.status };
    }
    case 'train':
      return trainAndCommitSlice(ctx, scope, job, artifacts, run, plan.resumeFrom);
  }
}

async function trainAndCommitSlice(
  ctx: ComputeContext,
  scope: JobScope,
  job: TrainSliceJob,
  artifacts: RunArtifacts,
  claimed: RunRecord,
  resumeFrom: number | null,
): Promise<TrainSliceResult> {
  let run = claimed;
  const config = runConfigOf(run);
  const claim = claimRun(scope.job.workerId, ctx.backend.name);
  if (claim(run) !== null) run = await ctx.runs.update(run.runId, claim);
  const files = resumeFrom === null ? null : (await artifacts.loadCheckpoint(resumeFrom)).files;
  const lane = { start: job.fromStep + job.slice, stride: job.slices };
  scope.throwIfAbandoned();
  const session = await openSession(ctx, run, config, { files, step: job.fromStep, lane }, job.toStep);
  try {
    scope.log(
      'info',
      `run ${run.runId}: ${describeSlice(job)} trains steps ${lane.start}, ${lane.start + lane.stride}, … below ${job.toStep} ` +
        `(${resumeFrom === null ? 'from the seed' : `from checkpoint ${resumeFrom}`}) on ${ctx.backend.name} with ${describeSession(session)}`,
      { attempt: scope.job.attempt },
      true,
    );
    const lines = await trainOrFail(ctx, scope, run, session, job.toStep);
    // Metrics first: a result is only ever visible together with the lines that explain it.
    await artifacts.writeShardMetrics(sliceMetricsName(job), lines);
    const commit = await artifacts.commitSliceResult(job, await session.trainer.checkpointFiles());
    const last = lines[lines.length - 1] ?? null;
    const updated = await ctx.runs.update(run.runId, recordSliceDone(job, last));
    scope.log(
      'info',
      `run ${run.runId}: ${describeSlice(job)} committed its result${commit.alreadyCommitted ? ' (it was already committed)' : ''}`,
      last ? { loss: last.loss, imagesPerSecond: last.imagesPerSecond } : {},
      true,
    );
    return {
      runId: job.runId,
      slice: job.slice,
      outcome: 'trained',
      status: updated.status,
      stepsTrained: lines.length,
      trainFlopsPerSecond: measuredTrainFlopsPerSecond(config, lines),
    };
  } finally {
    await session.close();
  }
}

/** The metrics file of a slice: runs/<id>/metrics/round-<fromStep>-slice-<i>-of-<n>.jsonl. */
export function sliceMetricsName(job: TrainSliceJob): string {
  return `round-${String(job.fromStep).padStart(9, '0')}-slice-${job.slice}-of-${job.slices}`;
}
