import { createHash } from 'node:crypto';
import {
  evaluateQueueFor,
  type JobProducer,
  type RunRecord,
  type RunRepository,
  type ScheduledSweepJob,
} from '@dinoq/jobs';
import { evalKey, latestCommitted, runsPrefix, type ObjectStore } from '@dinoq/storage';
import type { Logger } from './logger';

const MAX_ID = 64;

/**
 * The evaluation id of a scheduled evaluation: one per (schedule, step), so firing the schedule
 * again before a new checkpoint exists names the same evaluation.
 */
export function scheduledEvalId(scheduleId: string, step: number): string {
  const id = `${scheduleId}-s${step}`;
  if (id.length <= MAX_ID) return id;
  const digest = createHash('sha256').update(scheduleId).digest('hex').slice(0, 12);
  return `sched-${digest}-s${step}`;
}

/** BullMQ job id of a scheduled evaluation: `<runId>-<scheduleId>-s<step>`. */
export function scheduledEvalJobId(runId: string, scheduleId: string, step: number): string {
  return `${runId}-${scheduleId}-s${step}`;
}

export interface SweepResult {
  enqueued: { runId: string; step: number; jobId: string }[];
  /** Runs whose newest checkpoint is already evaluated or queued, or that have none. */
  unchanged: string[];
  errors: { runId: string; error: string }[];
}

export interface SweepDeps {
  store: ObjectStore;
  runs: RunRepository;
  producer: JobProducer;
  logger: Logger;
}

async function activeRuns(deps: SweepDeps): Promise<{ runs: RunRecord[]; errors: SweepResult['errors'] }> {
  const errors: SweepResult['errors'] = [];
  const runs: RunRecord[] = [];
  for await (const key of deps.store.list(runsPrefix())) {
    const match = /^runs\/([^/]+)\/run\.json$/.exec(key);
    if (!match) continue;
    try {
      const run = await deps.runs.find(match[1]);
      if (run && (run.status === 'queued' || run.status === 'running')) runs.push(run);
    } catch (error) {
      // One unreadable record must not stop the evaluation of every other run.
      errors.push({ runId: match[1], error: (error as Error).message });
    }
  }
  return { runs, errors };
}

/**
 * Fired by a job scheduler: queues an `evaluate` job for the newest committed checkpoint of the
 * given run, or of every queued or running run. Cheap I/O only, so it runs in the worker process
 * without waiting for the device.
 */
export async function evaluateSweep(deps: SweepDeps, sweep: ScheduledSweepJob): Promise<SweepResult> {
  const result: SweepResult = { enqueued: [], unchanged: [], errors: [] };
  let runs: RunRecord[];
  if (sweep.runId !== null) {
    const run = await deps.runs.find(sweep.runId);
    if (!run) throw new Error(`evaluate-sweep ${sweep.scheduleId}: run "${sweep.runId}" does not exist`);
    runs = [run];
  } else {
    const found = await activeRuns(deps);
    runs = found.runs;
    result.errors.push(...found.errors);
  }
  for (const run of runs) {
    try {
      const step = await latestCommitted(deps.store, run.runId);
      if (step === null) {
        result.unchanged.push(run.runId);
        continue;
      }
      const evalId = scheduledEvalId(sweep.scheduleId, step);
      if (await deps.store.exists(evalKey(run.runId, evalId))) {
        result.unchanged.push(run.runId);
        continue;
      }
      const jobId = scheduledEvalJobId(run.runId, sweep.scheduleId, step);
      await deps.producer.add(
        evaluateQueueFor(run.device),
        'evaluate',
        {
          runId: run.runId,
          evalId,
          step,
          kinds: sweep.kinds,
          knn: sweep.knn,
          linear: sweep.linear,
          scheduled: true,
        },
        { jobId },
      );
      result.enqueued.push({ runId: run.runId, step, jobId });
    } catch (error) {
      result.errors.push({ runId: run.runId, error: (error as Error).message });
    }
  }
  if (result.errors.length > 0) {
    deps.logger.warn(
      { scheduleId: sweep.scheduleId, errors: result.errors },
      'evaluate-sweep: some runs failed',
    );
  }
  return result;
}
