import { Injectable } from '@nestjs/common';
import {
  ConfigError,
  planRun,
  resolveRunConfig,
  scheduleStepProblems,
  type PresetName,
  type RunConfig,
} from '@dinoq/config';
import { continuationJob, newRunRecord, type StoredMetricsLine } from '@dinoq/jobs';
import { validateId } from '@dinoq/storage';
import { badRequest, conflict, notFound } from '../http/api-errors';
import { newId } from '../new-id';
import { Datasets } from '../repositories/datasets.repository';
import { JobQueues } from '../repositories/job-queues.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { RunIndexRepository } from '../repositories/run-index.repository';
import { AdmissionService } from './admission.service';
import type { CreateRunRequest, ListRunsQuery } from './run.schemas';
import { runView } from './run-view';

@Injectable()
export class RunsService {
  constructor(
    private readonly runs: RunRecords,
    private readonly datasets: Datasets,
    private readonly jobs: JobQueues,
    private readonly admission: AdmissionService,
    private readonly index: RunIndexRepository,
  ) {}

  /**
   * Validates everything before writing anything: ids, the whole config (every reason at once), the
   * dataset and the shard plan. Then run.json is written and shard 0 queued; if queueing fails the
   * record stays `queued` and reconciliation enqueues the shard later.
   */
  async create(request: CreateRunRequest) {
    const runId = validateId('runId', request.runId ?? newId('run'));
    const { datasetName, config, trainCount, plan } = await this.check(request);

    if (await this.runs.find(runId)) throw conflict(`run "${runId}" already exists`);
    const record = newRunRecord({
      runId,
      datasetName,
      datasetSize: trainCount,
      config,
      device: request.device,
      ...plan,
      retryBudget: request.retryBudget,
      createdAt: new Date().toISOString(),
    });
    if (!(await this.runs.create(record))) throw conflict(`run "${runId}" already exists`);

    const first = continuationJob(record, []);
    if (!first) throw conflict(`run "${runId}" has no steps to train`);
    const job = await this.jobs.addContinuation(first);
    return { ...runView(record), job: { id: job.id, queue: job.queue, state: job.state } };
  }

  /**
   * What a run of this request would be, or the 400/404 that creating it would answer: its config,
   * its dataset and its shard plan. Sweeps check every trial with it before creating any.
   */
  async check(request: Omit<CreateRunRequest, 'runId' | 'retryBudget'>) {
    const datasetName = validateId('dataset', request.dataset);
    const config: RunConfig = resolveRunConfig(
      request.preset as PresetName | undefined,
      request.config ?? {},
    );
    const manifest = await this.datasets.find(datasetName);
    if (!manifest) throw notFound(`dataset "${datasetName}" does not exist`, 'dataset');
    const trainCount = manifest.splits.train?.count;
    if (!trainCount) throw badRequest(`dataset "${datasetName}" has no training images`, 'dataset');
    if (trainCount < config.train.batchSize) {
      throw new ConfigError([
        `train.batchSize: ${config.train.batchSize} exceeds the ${trainCount} training images of dataset "${datasetName}"`,
      ]);
    }
    const plan = planRun(trainCount, config.train);
    const stepProblems = scheduleStepProblems(config, plan.itersPerEpoch);
    if (stepProblems.length > 0) throw new ConfigError(stepProblems);
    await this.admission.admit(config, request.device);
    return { datasetName, config, trainCount, plan };
  }

  /**
   * A page from the Redis index, as the JSON text of `runListSchema`: the summaries are stored as
   * JSON and sent as they are, since decoding and re-encoding them was a fifth of the request's CPU.
   * After Redis lost the index (a wipe), it is rebuilt from S3 first.
   */
  async list(query: ListRunsQuery): Promise<string> {
    let page = await this.index.pageJson(query);
    if (!page.built) {
      await this.index.ensureBuilt(() => this.runs.list());
      page = await this.index.pageJson(query);
    }
    return `{"runs":[${page.summaries.join(',')}],"nextCursor":${JSON.stringify(page.nextCursor)},"total":${page.total}}`;
  }

  async get(runId: string) {
    const run = await this.runs.get(runId);
    return runView(run, await this.runs.committedSteps(runId));
  }

  /** Metric lines of every shard, optionally from a step on, and how many unreadable lines were left out. */
  async metrics(runId: string, fromStep = 0): Promise<{ lines: StoredMetricsLine[]; skipped: number }> {
    await this.runs.get(runId);
    const { lines, skipped } = await this.runs.metricLines(runId);
    return { lines: lines.filter((line) => line.step >= fromStep), skipped: skipped.length };
  }
}
