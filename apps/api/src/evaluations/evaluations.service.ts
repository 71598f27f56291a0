import { Injectable } from '@nestjs/common';
import { evaluateQueueFor, type EvaluateJob, type RunRecord } from '@dinoq/jobs';
import { validateId } from '@dinoq/storage';
import { resolveCheckpointStep } from '../checkpoint-step';
import { badRequest, notFound } from '../http/api-errors';
import { evaluationJobId } from '../job-ids';
import { newId } from '../new-id';
import { Datasets } from '../repositories/datasets.repository';
import { JobQueues, type JobSnapshot } from '../repositories/job-queues.repository';
import { RunFiles } from '../repositories/run-files.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { evaluationProblems } from './evaluation-checks';
import type { CreateEvaluationRequest } from './evaluation.schemas';

const LISTED_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

export interface EvaluationView {
  evalId: string;
  status: string;
  step: number | null;
  kinds: string[];
  jobId: string | null;
  error: string | null;
  report: unknown;
}

function fromJob(job: JobSnapshot): EvaluationView {
  const data = job.data as Partial<EvaluateJob>;
  return {
    evalId: String(data.evalId),
    status: job.state,
    step: data.step ?? null,
    kinds: data.kinds ?? [],
    jobId: job.id,
    error: job.failedReason,
    report: null,
  };
}

function fromReport(evalId: string, report: unknown): EvaluationView {
  const fields = (typeof report === 'object' && report !== null ? report : {}) as Record<string, unknown>;
  return {
    evalId,
    status: 'completed',
    step: typeof fields.step === 'number' ? fields.step : null,
    kinds: Array.isArray(fields.kinds) ? (fields.kinds as string[]) : [],
    jobId: null,
    error: null,
    report,
  };
}

@Injectable()
export class EvaluationsService {
  constructor(
    private readonly runs: RunRecords,
    private readonly files: RunFiles,
    private readonly jobs: JobQueues,
    private readonly datasets: Datasets,
  ) {}

  async create(runId: string, request: CreateEvaluationRequest) {
    const run = await this.runs.get(runId);
    const step = resolveCheckpointStep(runId, request.step, await this.runs.committedSteps(runId));
    await this.checkRunnable(run, request);
    const evalId = newId('eval');
    const job = await this.jobs.add(
      evaluateQueueFor(run.device),
      'evaluate',
      {
        runId,
        evalId,
        step,
        kinds: request.kinds,
        knn: request.knn,
        linear: request.linear,
        scheduled: false,
      },
      evaluationJobId(runId, evalId),
    );
    return { runId, evalId, jobId: job.id, queue: job.queue, status: job.state, step, kinds: request.kinds };
  }

  /** Refuses what the worker would fail on, naming every problem. */
  private async checkRunnable(run: RunRecord, request: CreateEvaluationRequest): Promise<void> {
    const manifest = await this.datasets.find(run.datasetName);
    if (!manifest) throw notFound(`dataset "${run.datasetName}" of this run no longer exists`, 'dataset');
    const problems = evaluationProblems(run.config, manifest, request);
    if (problems.length > 0) {
      throw badRequest(
        problems.map((problem) => problem.message).join('; '),
        problems[0].field,
        problems.map((problem) => `${problem.field}: ${problem.message}`),
      );
    }
  }

  /** Stored reports plus evaluations still queued, running or failed; a report wins over its job. */
  async list(runId: string): Promise<EvaluationView[]> {
    const run = await this.runs.get(runId);
    const [reports, jobs] = await Promise.all([
      this.files.evalReports(runId),
      this.jobs.jobs(evaluateQueueFor(run.device), 'evaluate', LISTED_STATES),
    ]);
    const views = new Map<string, EvaluationView>();
    for (const job of jobs) {
      if ((job.data as Partial<EvaluateJob>).runId === runId) views.set(fromJob(job).evalId, fromJob(job));
    }
    for (const { evalId, report } of reports) views.set(evalId, fromReport(evalId, report));
    return [...views.values()].sort((a, b) => b.evalId.localeCompare(a.evalId));
  }

  async get(runId: string, evalId: string): Promise<EvaluationView> {
    validateId('evalId', evalId);
    const run = await this.runs.get(runId);
    const report = await this.files.evalReport(runId, evalId);
    if (report !== null) return fromReport(evalId, report);
    const job = await this.jobs.get(evaluateQueueFor(run.device), evaluationJobId(runId, evalId));
    if (job) return fromJob(job);
    throw notFound(`evaluation "${evalId}" of run "${runId}" does not exist`, 'evalId');
  }
}
