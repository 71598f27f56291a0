import { ConflictException, Injectable, Logger } from '@nestjs/common';
import pLimit from 'p-limit';
import { ConfigError, type PresetName, type RunConfig, type RunPlan } from '@dinoq/config';
import {
  DEFAULT_RUN_RETRY_BUDGET,
  SearchSpaceError,
  SweepNotFoundError,
  deriveSweep,
  evaluateQueueFor,
  evaluationReportSchema,
  expandSearchSpace,
  parseStored,
  rungEvalId,
  rungFractions,
  searchSpaceProblems,
  trialOverrides,
  trialRunId,
  trialRungSteps,
  checkpointForRung,
  type CreateSweepRequest,
  type RunRecord,
  type RungObservation,
  type SweepBudget,
  type SweepRecord,
  type SweepReport,
  type TrialObservation,
  type TrialPoint,
} from '@dinoq/jobs';
import { evalKey, validateId } from '@dinoq/storage';
import { badRequest, conflict, notFound } from '../http/api-errors';
import { evaluationJobId } from '../job-ids';
import { newId } from '../new-id';
import { JobQueues } from '../repositories/job-queues.repository';
import { RunFiles } from '../repositories/run-files.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { SweepRecords } from '../repositories/sweep-records.repository';
import { AdmissionService } from '../runs/admission.service';
import { RunLifecycleService } from '../runs/run-lifecycle.service';
import { RunsService } from '../runs/runs.service';

/** Trials observed at once: each reads its run, its checkpoints and its rung results. */
const TRIALS_IN_FLIGHT = 8;
const LIVE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children'];

/** Steps between a run's commits: its shard length, or one round of all its slices. */
function commitEvery(config: RunConfig, plan: Pick<RunPlan, 'stepsPerShard'>): number {
  return config.parallel.slices > 1
    ? config.parallel.slices * config.parallel.syncEverySteps
    : plan.stepsPerShard;
}

function trialRequest(
  record: Pick<SweepRecord, 'dataset' | 'preset' | 'config' | 'budget' | 'device'>,
  point: TrialPoint,
) {
  return {
    dataset: record.dataset,
    preset: record.preset,
    config: trialOverrides(record, point),
    device: record.device,
  };
}

/**
 * Sweeps: sets of ordinary runs over a search space, ranked at evaluation rungs, the worse ones
 * cancelled by successive halving. The sweep's record lives in S3; everything else is derived from
 * its trials' runs and evaluation reports, so a wiped Redis or a restarted API loses nothing.
 */
@Injectable()
export class SweepsService {
  private readonly logger = new Logger('SweepsService');

  constructor(
    private readonly sweeps: SweepRecords,
    private readonly runsService: RunsService,
    private readonly lifecycle: RunLifecycleService,
    private readonly runs: RunRecords,
    private readonly files: RunFiles,
    private readonly jobs: JobQueues,
    private readonly admission: AdmissionService,
  ) {}

  /**
   * Checks the search space, every trial's config and rungs before anything is written or queued;
   * then writes sweep.json and creates the trials as runs (a trial left out by a crash is created
   * by the controller's next pass).
   */
  async create(submitted: CreateSweepRequest) {
    const sweepId = validateId('sweepId', submitted.sweepId ?? newId('sweep'));
    const request = { ...submitted, budget: await this.budgetOf(submitted) };
    const points = this.pointsOf(request);
    for (const [index, point] of points.entries()) await this.checkTrial(request, point, index);
    const now = new Date().toISOString();
    const record: SweepRecord = {
      ...request,
      sweepId,
      trials: points.map((point, index) => ({ runId: trialRunId(sweepId, index), point })),
      status: 'running',
      cancelRequested: false,
      error: null,
      createdAt: now,
      updatedAt: now,
    };
    if (!(await this.sweeps.create(record))) throw conflict(`sweep "${sweepId}" already exists`);
    for (const trial of record.trials) await this.createTrial(record, trial.runId, trial.point);
    return this.view(record);
  }

  async get(sweepId: string) {
    return this.view(await this.record(sweepId));
  }

  async list() {
    const records = await Promise.all((await this.sweeps.ids()).map((id) => this.sweeps.find(id)));
    return {
      sweeps: records
        .filter((record): record is SweepRecord => record !== null)
        .map(({ sweepId, status, trials, createdAt }) => ({
          sweepId,
          status,
          trials: trials.length,
          createdAt,
        }))
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt)),
    };
  }

  /** Asks every trial's run to stop; the controller cancels what is left and closes the sweep. */
  async cancel(sweepId: string) {
    const record = await this.sweeps.update(sweepId, (current) => {
      if (current.status !== 'running') throw conflict(`sweep "${sweepId}" is ${current.status}`);
      return current.cancelRequested ? null : { cancelRequested: true };
    });
    await this.advance(record);
    return this.get(sweepId);
  }

  /** Ids of sweeps still running, for the controller. */
  async runningSweeps(): Promise<SweepRecord[]> {
    const records = await Promise.all((await this.sweeps.ids()).map((id) => this.sweeps.find(id)));
    return records.filter((record): record is SweepRecord => record?.status === 'running');
  }

  /**
   * One controller step: derive the sweep's state, create missing trials, request rung
   * evaluations, cancel stopped trials, store the report, and close the sweep once it is over.
   * Every action is idempotent (deterministic run and job ids), so a repeated step does no harm.
   */
  async advance(record: SweepRecord): Promise<SweepReport> {
    const { report, actions } = deriveSweep(record, await this.observe(record));
    for (const runId of actions.create) {
      const trial = record.trials.find((t) => t.runId === runId)!;
      await this.createTrial(record, runId, trial.point);
    }
    for (const { runId, rung, step } of actions.evaluate) await this.requestRung(record, runId, rung, step);
    for (const runId of actions.cancel) await this.cancelTrial(runId);
    await this.sweeps.writeReport(report);
    if (report.status !== 'running') {
      await this.sweeps.update(record.sweepId, (current) =>
        current.status === 'running' ? { status: report.status } : null,
      );
    }
    return report;
  }

  /**
   * The budget as the sweep records it: minutes come with the training speed that converts them
   * to steps (the request's, else the slowest measured worker's), so every trial, created now or
   * by a later controller pass, gets the same steps.
   */
  private async budgetOf(request: CreateSweepRequest): Promise<SweepBudget> {
    const { budget } = request;
    if (budget.minutes === undefined || budget.flopsPerSecond !== undefined) return budget;
    const speed = await this.admission.trainingSpeed(request.device);
    if (typeof speed === 'string') {
      throw badRequest(
        `budget.minutes: ${speed}, so minutes cannot be converted to steps; give budget.flopsPerSecond ` +
          '(matmul FLOP/s of the workers that will train), or a budget in steps or images',
        'budget.minutes',
      );
    }
    this.logger.log(
      `minutes converted to steps at ${speed.workerId}'s measured ${(speed.flopsPerSecond / 1e9).toFixed(2)} GFLOP/s`,
    );
    return { ...budget, flopsPerSecond: speed.flopsPerSecond };
  }

  private pointsOf(request: CreateSweepRequest): TrialPoint[] {
    try {
      const points = expandSearchSpace(request.space, request.budget.trials);
      const preset = request.preset as PresetName | undefined;
      const problems = searchSpaceProblems(request.space, points, preset, request.config ?? {});
      if (problems.length > 0) throw new SearchSpaceError(problems);
      return points;
    } catch (error) {
      if (!(error instanceof SearchSpaceError)) throw error;
      const field = error.reasons[0].slice(0, error.reasons[0].search(/[ :]/));
      throw badRequest(error.message, field, error.reasons);
    }
  }

  /** What creating the trial's run would answer, and whether its rungs fall on distinct checkpoints. */
  private async checkTrial(request: CreateSweepRequest, point: TrialPoint, index: number): Promise<void> {
    const where = `trial ${index} ${JSON.stringify(point)}`;
    let checked;
    try {
      checked = await this.runsService.check(trialRequest(request, point));
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      throw badRequest(
        `invalid ${where}`,
        'space',
        error.reasons.map((reason) => `${where}: ${reason}`),
      );
    }
    const { config, plan } = checked;
    const steps = trialRungSteps(
      { totalSteps: plan.totalSteps, commitEvery: commitEvery(config, plan) },
      request,
    );
    if (steps === null) {
      throw badRequest(
        `earlyStopping.rungs: ${where} has ${plan.totalSteps} steps committed every ` +
          `${commitEvery(config, plan)}; ${request.earlyStopping.rungs} rungs at fractions ` +
          `${rungFractions(request.earlyStopping).join(', ')} would share a checkpoint: lower ` +
          'train.stepsPerShard, raise the budget or use fewer rungs',
        'earlyStopping.rungs',
      );
    }
  }

  private async createTrial(record: SweepRecord, runId: string, point: TrialPoint): Promise<void> {
    try {
      await this.runsService.create({
        ...trialRequest(record, point),
        runId,
        retryBudget: DEFAULT_RUN_RETRY_BUDGET,
      });
    } catch (error) {
      // A run under the trial's id exists: an earlier attempt created it.
      if (!(error instanceof ConflictException)) throw error;
    }
  }

  private async requestRung(record: SweepRecord, runId: string, rung: number, step: number): Promise<void> {
    if (record.metric.kind !== 'knn') return;
    const run = await this.runs.get(runId);
    const evalId = rungEvalId(rung);
    const { k, temperature, bankImages, queryImages } = record.metric;
    await this.jobs.add(
      evaluateQueueFor(run.device),
      'evaluate',
      {
        runId,
        evalId,
        step,
        kinds: ['knn'],
        knn: { ks: [k], temperature, trainLimit: bankImages, testLimit: queryImages },
        scheduled: false,
      },
      evaluationJobId(runId, evalId),
    );
  }

  /** A stopped trial is cancelled like any run: a queued shard is removed, a running one finishes. */
  private async cancelTrial(runId: string): Promise<void> {
    try {
      await this.lifecycle.cancel(runId);
    } catch (error) {
      // Completed or failed in the meantime: nothing left to stop.
      if (!(error instanceof ConflictException)) throw error;
    }
  }

  private async record(sweepId: string): Promise<SweepRecord> {
    try {
      return await this.sweeps.get(validateId('sweepId', sweepId));
    } catch (error) {
      if (error instanceof SweepNotFoundError) throw notFound(error.message, 'sweepId');
      throw error;
    }
  }

  private async view(record: SweepRecord) {
    const { report } = deriveSweep(record, await this.observe(record));
    return {
      ...report,
      dataset: record.dataset,
      preset: record.preset ?? null,
      createdAt: record.createdAt,
      rungFractions: rungFractions(record.earlyStopping),
    };
  }

  private observe(record: SweepRecord): Promise<TrialObservation[]> {
    const limit = pLimit(TRIALS_IN_FLIGHT);
    return Promise.all(
      record.trials.map((trial) => limit(() => this.observeTrial(record, trial.runId, trial.point))),
    );
  }

  private async observeTrial(
    record: SweepRecord,
    runId: string,
    point: TrialPoint,
  ): Promise<TrialObservation> {
    const none: RungObservation[] = Array.from({ length: record.earlyStopping.rungs }, () => ({
      kind: 'none',
    }));
    const run = await this.runs.find(runId);
    if (!run) return { runId, point, run: null, rungs: none };
    const committedSteps = await this.runs.committedSteps(runId);
    const trialRun = {
      status: run.status,
      totalSteps: run.totalSteps,
      commitEvery: commitEvery(run.config, run),
      committedSteps,
      cancelRequested: run.cancelRequested,
      error: run.error,
    };
    const steps = trialRungSteps(trialRun, record) ?? [];
    const rungs = await Promise.all(
      steps.map((step, rung) => {
        const checkpoint = checkpointForRung(committedSteps, step);
        return checkpoint === null ? none[rung] : this.observeRung(record, run, rung, checkpoint);
      }),
    );
    return { runId, point, run: trialRun, rungs: rungs.length > 0 ? rungs : none };
  }

  private observeRung(
    record: SweepRecord,
    run: RunRecord,
    rung: number,
    step: number,
  ): Promise<RungObservation> {
    return record.metric.kind === 'knn'
      ? this.knnAtRung(run, rung, record.metric.k)
      : this.lossAtRung(run.runId, step, record.metric.window);
  }

  private async knnAtRung(run: RunRecord, rung: number, k: number): Promise<RungObservation> {
    const evalId = rungEvalId(rung);
    const stored = await this.files.evalReport(run.runId, evalId);
    if (stored !== null) {
      const report = parseStored(evaluationReportSchema, evalKey(run.runId, evalId), stored);
      const score = report.knn?.find((entry) => entry.k === k);
      if (!score) return { kind: 'failed', error: `the report of ${evalId} has no k-NN score at k ${k}` };
      return { kind: 'result', value: score.top1, at: report.createdAt, step: report.step };
    }
    const job = await this.jobs.get(evaluateQueueFor(run.device), evaluationJobId(run.runId, evalId));
    if (job === null) return { kind: 'none' };
    if (job.state === 'failed') return { kind: 'failed', error: job.failedReason ?? 'no reason recorded' };
    if (LIVE_STATES.includes(job.state)) return { kind: 'evaluating' };
    this.logger.warn(`run ${run.runId}: job of ${evalId} is ${job.state} but wrote no report`);
    return { kind: 'evaluating' };
  }

  /** The mean loss of the `window` steps before the rung's checkpoint. */
  private async lossAtRung(runId: string, step: number, window: number): Promise<RungObservation> {
    const { lines } = await this.runs.metricLines(runId);
    const before = lines.filter((line) => line.step < step && line.step >= step - window);
    if (before.length === 0) return { kind: 'none' };
    const value = before.reduce((sum, line) => sum + line.loss, 0) / before.length;
    return { kind: 'result', value, at: before[before.length - 1].time, step };
  }
}
