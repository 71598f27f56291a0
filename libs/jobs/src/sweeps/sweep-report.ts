import { z } from 'zod';
import { runStatuses, type RunStatus } from '../run-record';
import { idSchema } from '../schemas';
import { bestTrial, rungSteps, stoppedTrials, type TrialResults } from './successive-halving';
import {
  sweepStatuses,
  trialPointSchema,
  type SweepMetric,
  type SweepRecord,
  type TrialPoint,
} from './sweep-spec';

/*
 * A sweep's state derived from what storage and the queues hold: each trial's run, the results
 * at its rungs, which trials successive halving stops, the best so far, and what the controller
 * must do next. A pure function, so GET /sweeps/:id and the controller agree, and a restarted
 * controller derives the same decisions.
 */

export const trialStates = ['pending', 'running', 'stopped', 'completed', 'failed', 'cancelled'] as const;
export const rungStates = ['waiting', 'evaluating', 'done', 'failed', 'skipped'] as const;

export const sweepReportSchema = z.object({
  sweepId: idSchema,
  status: z.enum(sweepStatuses),
  metric: z.object({
    kind: z.enum(['knn', 'loss']),
    better: z.enum(['higher', 'lower']),
    label: z.string().describe('e.g. "k-NN top-1 % (k 20)"'),
  }),
  trials: z.array(
    z.object({
      runId: idSchema,
      point: trialPointSchema.describe('the config paths this trial sets, and their values'),
      state: z.enum(trialStates),
      runStatus: z.enum(runStatuses).nullable(),
      step: z.number().int().min(0).nullable().describe('newest committed step'),
      totalSteps: z.number().int().min(1).nullable(),
      stoppedAtRung: z.number().int().min(0).nullable(),
      rungs: z.array(
        z.object({
          rung: z.number().int().min(0),
          step: z.number().int().min(0).nullable().describe('the checkpoint evaluated (or to be)'),
          value: z.number().nullable(),
          state: z.enum(rungStates),
          error: z.string().nullable(),
        }),
      ),
      error: z.string().nullable(),
    }),
  ),
  best: z
    .object({
      runId: idSchema,
      rung: z.number().int().min(0),
      step: z.number().int().min(0).nullable(),
      value: z.number(),
      point: trialPointSchema,
    })
    .nullable()
    .describe('the best result at the highest rung reached so far'),
  derivedAt: z.string(),
});
export type SweepReport = z.infer<typeof sweepReportSchema>;
export type TrialReport = SweepReport['trials'][number];

/** What is known of one rung of one trial. */
export type RungObservation =
  | { kind: 'result'; value: number; at: string; step: number }
  | { kind: 'failed'; error: string }
  | { kind: 'evaluating' }
  | { kind: 'none' };

export interface TrialRun {
  status: RunStatus;
  totalSteps: number;
  /** Steps between the checkpoints the run commits (its shard length). */
  commitEvery: number;
  committedSteps: readonly number[];
  cancelRequested: boolean;
  error: string | null;
}

export interface TrialObservation {
  runId: string;
  point: TrialPoint;
  /** Null while the trial's run has not been created. */
  run: TrialRun | null;
  /** One entry per rung. */
  rungs: readonly RungObservation[];
}

export interface SweepActions {
  /** Trials whose run must be created. */
  create: string[];
  /** Rung evaluations to request: the trial committed the checkpoint and has no result there. */
  evaluate: { runId: string; rung: number; step: number }[];
  /** Runs to cancel: stopped by early stopping, or the sweep was cancelled. */
  cancel: string[];
}

const ACTIVE: readonly RunStatus[] = ['queued', 'running'];

export function metricLabel(metric: SweepMetric): SweepReport['metric'] {
  return metric.kind === 'knn'
    ? { kind: 'knn', better: 'higher', label: `k-NN top-1 % (k ${metric.k})` }
    : { kind: 'loss', better: 'lower', label: `training loss (mean of ${metric.window} steps)` };
}

/** The rung steps of a trial's run; null when its rungs would share a checkpoint. */
export function trialRungSteps(
  run: Pick<TrialRun, 'totalSteps' | 'commitEvery'>,
  record: Pick<SweepRecord, 'earlyStopping'>,
) {
  return rungSteps(run.totalSteps, run.commitEvery, record.earlyStopping);
}

/** The first committed step at or after `step`: the checkpoint a rung evaluates. */
export function checkpointForRung(committedSteps: readonly number[], step: number): number | null {
  return committedSteps.find((committed) => committed >= step) ?? null;
}

function endedWithout(run: TrialRun | null, rungs: readonly RungObservation[]): string | null {
  const failed = rungs.find((rung) => rung.kind === 'failed');
  if (failed?.kind === 'failed') return `rung evaluation failed: ${failed.error}`;
  if (run?.status === 'failed') return run.error ?? 'the run failed';
  return null;
}

/** The state of the sweep and what its controller should do now. */
export function deriveSweep(
  record: SweepRecord,
  trials: readonly TrialObservation[],
  now = new Date(),
): { report: SweepReport; actions: SweepActions } {
  const direction = record.metric.kind === 'knn' ? 1 : -1;
  const finalRung = record.earlyStopping.rungs - 1;
  const results: TrialResults[] = trials.map((trial) => ({
    trialId: trial.runId,
    results: trial.rungs.map((rung) =>
      rung.kind === 'result' ? { score: direction * rung.value, at: rung.at } : null,
    ),
    ended:
      endedWithout(trial.run, trial.rungs) !== null ||
      (trial.run !== null && trial.run.status === 'cancelled'),
  }));
  const stops = stoppedTrials(results, record.earlyStopping);
  const actions: SweepActions = { create: [], evaluate: [], cancel: [] };

  const reports = trials.map((trial): TrialReport => {
    const { run } = trial;
    const stoppedAtRung = stops.get(trial.runId) ?? null;
    const steps = run ? trialRungSteps(run, record) : null;
    const error = endedWithout(run, trial.rungs);
    const finished = trial.rungs[finalRung]?.kind === 'result';
    const state: TrialReport['state'] =
      run === null
        ? 'pending'
        : stoppedAtRung !== null
          ? 'stopped'
          : finished
            ? 'completed'
            : error !== null
              ? 'failed'
              : run.status === 'cancelled'
                ? 'cancelled'
                : 'running';
    if (run === null && record.status === 'running' && !record.cancelRequested)
      actions.create.push(trial.runId);
    const stopRun = state === 'stopped' || record.cancelRequested || record.status === 'cancelled';
    if (run && stopRun && ACTIVE.includes(run.status) && !run.cancelRequested)
      actions.cancel.push(trial.runId);
    const rungs = trial.rungs.map((observation, rung) => {
      const checkpoint = run && steps ? checkpointForRung(run.committedSteps, steps[rung]) : null;
      const skipped =
        (stoppedAtRung !== null && rung > stoppedAtRung) || (state !== 'running' && state !== 'completed');
      if (observation.kind === 'result')
        return {
          rung,
          step: observation.step,
          value: observation.value,
          state: 'done' as const,
          error: null,
        };
      if (observation.kind === 'failed')
        return { rung, step: checkpoint, value: null, state: 'failed' as const, error: observation.error };
      if (skipped) return { rung, step: null, value: null, state: 'skipped' as const, error: null };
      if (checkpoint === null)
        return { rung, step: steps?.[rung] ?? null, value: null, state: 'waiting' as const, error: null };
      if (observation.kind === 'none' && record.status === 'running')
        actions.evaluate.push({ runId: trial.runId, rung, step: checkpoint });
      return { rung, step: checkpoint, value: null, state: 'evaluating' as const, error: null };
    });
    const runError = run && steps === null ? 'its rungs fall on one checkpoint' : null;
    return {
      runId: trial.runId,
      point: trial.point,
      state,
      runStatus: run?.status ?? null,
      step: run ? (run.committedSteps[run.committedSteps.length - 1] ?? null) : null,
      totalSteps: run?.totalSteps ?? null,
      stoppedAtRung,
      rungs,
      error: error ?? runError,
    };
  });

  const best = bestTrial(results);
  const bestReport = best ? reports.find((trial) => trial.runId === best.trialId)! : null;
  return {
    report: {
      sweepId: record.sweepId,
      status: sweepStatusOf(record, reports, actions),
      metric: metricLabel(record.metric),
      trials: reports,
      best:
        best && bestReport
          ? {
              runId: best.trialId,
              rung: best.rung,
              step: bestReport.rungs[best.rung].step,
              value: direction * best.score,
              point: bestReport.point,
            }
          : null,
      derivedAt: now.toISOString(),
    },
    actions,
  };
}

/** A running sweep is over once no trial can produce another result and every stop is asked for. */
function sweepStatusOf(
  record: SweepRecord,
  trials: readonly TrialReport[],
  actions: SweepActions,
): SweepReport['status'] {
  if (record.status !== 'running') return record.status;
  if (actions.cancel.length > 0) return 'running';
  if (record.cancelRequested) return 'cancelled';
  if (trials.some((trial) => trial.state === 'running' || trial.state === 'pending')) return 'running';
  return trials.some((trial) => trial.state === 'completed') ? 'completed' : 'failed';
}
