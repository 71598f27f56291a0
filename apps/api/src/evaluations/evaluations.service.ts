import { Injectable } from '@nestjs/common';
import {
  evaluateQueueFor,
  evaluationReportSchema,
  evaluationSummary,
  parseStored,
  type EvaluateJob,
  type RunRecord,
} from '@dinoq/jobs';
import { UnreadableObjectError, evalKey, validateId } from '@dinoq/storage';
import { resolveCheckpointStep } from '../checkpoint-step';
import { badRequest, notFound } from '../http/api-errors';
import { evaluationJobId } from '../job-ids';
import { newId } from '../new-id';
import { Datasets } from '../repositories/datasets.repository';
import { JobQueues, type JobSnapshot } from '../repositories/job-queues.repository';
import { RunFiles } from '../repositories/run-files.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { evaluationProblems } from './evaluation-checks';
import type { CreateEvaluationRequest, EvaluationView } from './evaluation.schemas';

const LISTED_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

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
    summary: [],
  };
}

/** @throws UnreadableObjectError naming the key when the stored report is not an evaluation report. */
function fromReport(runId: string, evalId: string, stored: unknown): EvaluationView {
  const report = parseStored(evaluationReportSchema, evalKey(runId, evalId), stored);
  return {
    evalId,
    status: 'completed',
    step: report.step,
    kinds: report.kinds,
    jobId: null,
    error: null,
    report,
    summary: evaluationSummary(report),
  };
}

/** In a listing, a report that cannot be read shows as such rather than hiding the others. */
function listedReport(runId: string, evalId: string, stored: unknown): EvaluationView {
  try {
    return fromReport(runId, evalId, stored);
  } catch (error) {
    if (!(error instanceof UnreadableObjectError)) throw error;
    return {
      evalId,
      status: 'unreadable',
      step: null,
      kinds: [],
      jobId: null,
      error: error.message,
      report: null,
      summary: [],
    };
  }
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
    for (const { evalId, report } of reports) views.set(evalId, listedReport(runId, evalId, report));
    return [...views.values()].sort((a, b) => b.evalId.localeCompare(a.evalId));
  }

  async get(runId: string, evalId: string): Promise<EvaluationView> {
    validateId('evalId', evalId);
    const run = await this.runs.get(runId);
    const report = await this.files.evalReport(runId, evalId);
    if (report !== null) return fromReport(runId, evalId, report);
    const job = await this.jobs.get(evaluateQueueFor(run.device), evaluationJobId(runId, evalId));
    if (job) return fromJob(job);
    throw notFound(`evaluation "${evalId}" of run "${runId}" does not exist`, 'evalId');
  }
}
