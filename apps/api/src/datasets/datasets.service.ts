import { Injectable, NotFoundException } from '@nestjs/common';
import { QueueName, type ImportJob } from '@dinoq/jobs';
import { validateId } from '@dinoq/storage';
import { conflict, notFound } from '../http/api-errors';
import { importJobId } from '../job-ids';
import { Datasets, type DatasetManifest } from '../repositories/datasets.repository';
import { JobQueues, type JobSnapshot } from '../repositories/job-queues.repository';
import type { ImportDatasetRequest } from './dataset.schemas';

export interface DatasetSummary {
  name: string;
  classes: string[];
  /** The size every image has; null when images keep their own sizes. */
  imageSize: NonNullable<DatasetManifest['imageSize']> | null;
  channels: number | null;
  splits: Record<string, { count: number }>;
  createdAt: string | null;
}

/** The import job of a data set name: where it stands and, once failed, why. */
export interface ImportView {
  name: string;
  jobId: string;
  state: JobSnapshot['state'];
  source: ImportJob['source'] | null;
  failedReason: string | null;
  createdAt: string | null;
  processedAt: string | null;
  finishedAt: string | null;
}

function importView(name: string, job: JobSnapshot): ImportView {
  const data = job.data as Partial<ImportJob> | null;
  return {
    name,
    jobId: job.id,
    state: job.state,
    source: data?.source ?? null,
    failedReason: job.failedReason,
    createdAt: job.createdAt,
    processedAt: job.processedAt,
    finishedAt: job.finishedAt,
  };
}

/** Why a data set without a manifest is missing, when its import job says more than "never imported". */
function missingBecause(job: ImportView): string {
  if (job.state === 'failed')
    return `its import job ${job.jobId} failed: ${job.failedReason ?? 'no reason given'}`;
  if (job.state === 'completed') return `its import job ${job.jobId} completed but wrote no manifest`;
  return `it is being imported (job ${job.jobId} is ${job.state})`;
}

function summarise(manifest: DatasetManifest): DatasetSummary {
  return {
    name: manifest.name,
    classes: manifest.classes,
    imageSize: manifest.imageSize ?? null,
    channels: manifest.imageSize?.channels ?? manifest.channels ?? null,
    splits: Object.fromEntries(
      Object.entries(manifest.splits).map(([split, info]) => [split, { count: info.count }]),
    ),
    createdAt: manifest.createdAt ?? null,
  };
}

@Injectable()
export class DatasetsService {
  constructor(
    private readonly datasets: Datasets,
    private readonly jobs: JobQueues,
  ) {}

  async list(): Promise<DatasetSummary[]> {
    return (await this.datasets.list()).map(summarise).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * A data set exists once its manifest does. Without one, the 404 carries the import job of that
   * name (`import`) when there is one, so a failed import is visible with its reason.
   */
  async get(name: string): Promise<DatasetSummary> {
    const manifest = await this.datasets.find(name);
    if (manifest) return summarise(manifest);
    const job = await this.findImport(name);
    if (!job) throw notFound(`dataset "${name}" does not exist`, 'name');
    throw new NotFoundException({
      statusCode: 404,
      error: 'Not Found',
      message: `dataset "${name}" does not exist: ${missingBecause(job)}`,
      field: 'name',
      import: job,
    });
  }

  /** The import job of `name` (waiting, active, failed or completed), while BullMQ keeps it. */
  async getImport(name: string): Promise<ImportView> {
    const job = await this.findImport(name);
    if (!job) throw notFound(`no import job for dataset "${name}"`, 'name');
    return job;
  }

  private async findImport(name: string): Promise<ImportView | null> {
    const job = await this.jobs.get(QueueName.Import, importJobId(name));
    return job ? importView(name, job) : null;
  }

  /** Queues an import under the id `import-<name>`, so repeating the request while it runs is a no-op. */
  async import(request: ImportDatasetRequest) {
    const name = validateId('name', request.name);
    if (await this.datasets.find(name)) throw conflict(`dataset "${name}" already exists`);
    const jobId = importJobId(name);
    // A finished job keeps its id for days; without removing it, a new import would silently do nothing.
    await this.jobs.removeFinished(QueueName.Import, jobId);
    const job = await this.jobs.add(
      QueueName.Import,
      'import',
      { datasetName: name, source: request.source },
      jobId,
    );
    return { name, jobId: job.id, queue: job.queue, state: job.state };
  }
}
