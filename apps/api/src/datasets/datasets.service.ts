import { Injectable } from '@nestjs/common';
import { QueueName } from '@dinoq/jobs';
import { validateId } from '@dinoq/storage';
import { conflict, notFound } from '../http/api-errors';
import { importJobId } from '../job-ids';
import { Datasets, type DatasetManifest } from '../repositories/datasets.repository';
import { JobQueues } from '../repositories/job-queues.repository';
import type { ImportDatasetRequest } from './dataset.schemas';

export interface DatasetSummary {
  name: string;
  classes: string[];
  imageSize: DatasetManifest['imageSize'];
  splits: Record<string, { count: number }>;
  createdAt: string | null;
}

function summarise(manifest: DatasetManifest): DatasetSummary {
  return {
    name: manifest.name,
    classes: manifest.classes,
    imageSize: manifest.imageSize,
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

  async get(name: string): Promise<DatasetSummary> {
    const manifest = await this.datasets.find(name);
    if (!manifest) throw notFound(`dataset "${name}" does not exist`, 'name');
    return summarise(manifest);
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
