import { Inject, Injectable } from '@nestjs/common';
import { QueueName, attentionIndexSchema, parseStored, type AttentionJob } from '@dinoq/jobs';
import { UnreadableObjectError, attentionFileKey, validateId } from '@dinoq/storage';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { resolveCheckpointStep } from '../checkpoint-step';
import { badRequest, notFound, payloadTooLarge } from '../http/api-errors';
import { attentionJobId } from '../job-ids';
import { newId } from '../new-id';
import { Datasets } from '../repositories/datasets.repository';
import { JobQueues } from '../repositories/job-queues.repository';
import { RunFiles } from '../repositories/run-files.repository';
import { RunRecords } from '../repositories/run-records.repository';
import type { AttentionView, CreateAttentionRequest } from './attention.schemas';
import {
  UploadError,
  checkDecodes,
  decodeUpload,
  readSize,
  type ImageSize,
  type UploadedImage,
} from './image-upload';

const LISTED_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed'] as const;

@Injectable()
export class AttentionService {
  constructor(
    private readonly runs: RunRecords,
    private readonly datasets: Datasets,
    private readonly files: RunFiles,
    private readonly jobs: JobQueues,
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
  ) {}

  /** Every upload is checked before the first one is stored, so a bad image leaves nothing behind. */
  async create(runId: string, request: CreateAttentionRequest) {
    const run = await this.runs.get(runId);
    const step = resolveCheckpointStep(runId, request.step, await this.runs.committedSteps(runId));
    const exportId = newId('attn');
    let images: AttentionJob['images'];
    if ('upload' in request.images) {
      const decoded = await this.decodeAll(request.images.upload);
      const uploadKeys: string[] = [];
      for (const [index, image] of decoded.entries()) {
        uploadKeys.push(
          await this.files.putAttentionInput(
            runId,
            exportId,
            `input-${index}.${image.extension}`,
            image.bytes,
            image.contentType,
          ),
        );
      }
      images = { uploadKeys };
    } else {
      await this.checkIndices(run.datasetName, request.images.split, request.images.indices);
      images = { split: request.images.split, indices: request.images.indices };
    }
    const job = await this.jobs.add(
      QueueName.Attention,
      'attention',
      { runId, exportId, step, images, threshold: request.threshold ?? 0.6 },
      attentionJobId(runId, exportId),
    );
    return { runId, exportId, jobId: job.id, queue: job.queue, status: job.state, step };
  }

  /** Every export of the run, newest first: those with files in storage and those still queued or failed. */
  async list(runId: string): Promise<AttentionView[]> {
    await this.runs.get(runId);
    const [objects, jobs] = await Promise.all([
      this.files.objects(runId, 'attention/'),
      this.jobs.jobs(QueueName.Attention, 'attention', LISTED_STATES),
    ]);
    const exportIds = new Set(objects.map((object) => object.key.split('/')[1]));
    for (const job of jobs) {
      const data = job.data as Partial<AttentionJob>;
      if (data.runId === runId && typeof data.exportId === 'string') exportIds.add(data.exportId);
    }
    const views = await Promise.all([...exportIds].map((exportId) => this.listed(runId, exportId)));
    return views.sort((a, b) => b.exportId.localeCompare(a.exportId));
  }

  /** In a listing, an index that cannot be read shows as such rather than hiding the others. */
  private async listed(runId: string, exportId: string): Promise<AttentionView> {
    try {
      return await this.get(runId, exportId);
    } catch (error) {
      if (!(error instanceof UnreadableObjectError)) throw error;
      return { runId, exportId, status: 'unreadable', error: error.message, index: null };
    }
  }

  /** @throws UnreadableObjectError naming the key when index.json is not an export index. */
  async get(runId: string, exportId: string): Promise<AttentionView> {
    validateId('exportId', exportId);
    await this.runs.get(runId);
    const stored = await this.files.attentionIndex(runId, exportId);
    const index =
      stored === null
        ? null
        : parseStored(attentionIndexSchema, attentionFileKey(runId, exportId, 'index.json'), stored);
    const job = await this.jobs.get(QueueName.Attention, attentionJobId(runId, exportId));
    if (index === null && job === null && !(await this.files.hasAttentionExport(runId, exportId))) {
      throw notFound(`attention export "${exportId}" of run "${runId}" does not exist`, 'exportId');
    }
    return {
      runId,
      exportId,
      status: index !== null ? 'completed' : (job?.state ?? 'unknown'),
      error: job?.failedReason ?? null,
      index,
    };
  }

  /**
   * Headers first, so a request whose images hold too many pixels together is refused before any
   * is decoded; then one image at a time, so a request keeps at most one of libuv's threads busy.
   */
  private async decodeAll(encoded: string[]): Promise<UploadedImage[]> {
    try {
      const uploads = encoded.map((item, index) => decodeUpload(item, uploadField(index)));
      const sizes: ImageSize[] = [];
      for (const [index, upload] of uploads.entries()) sizes.push(await readSize(upload, uploadField(index)));
      this.checkTotalPixels(sizes);
      for (const [index, upload] of uploads.entries())
        await checkDecodes(upload, sizes[index], uploadField(index));
      return uploads;
    } catch (error) {
      if (error instanceof UploadError) throw badRequest(error.message, error.field);
      throw error;
    }
  }

  private checkTotalPixels(sizes: ImageSize[]): void {
    const total = sizes.reduce((sum, size) => sum + size.width * size.height, 0);
    const limit = this.options.uploadMaxTotalPixels;
    if (total <= limit) return;
    const listed = sizes.map((size) => `${size.width}×${size.height}`).join(', ');
    throw payloadTooLarge(
      `images.upload: ${sizes.length} images of ${total} pixels in all (${listed}), over the limit of ${limit} ` +
        'pixels per request (DINOQ_UPLOAD_MAX_TOTAL_PIXELS); send fewer or smaller images',
      'images.upload',
    );
  }

  private async checkIndices(datasetName: string, split: string, indices: number[]): Promise<void> {
    const manifest = await this.datasets.find(datasetName);
    if (!manifest) throw notFound(`dataset "${datasetName}" of this run no longer exists`, 'dataset');
    const info = manifest.splits[split];
    if (!info) {
      throw badRequest(
        `dataset "${datasetName}" has no split "${split}" (splits: ${Object.keys(manifest.splits).join(', ')})`,
        'images.split',
      );
    }
    const outside = indices.filter((index) => index >= info.count);
    if (outside.length > 0) {
      throw badRequest(
        `indices ${outside.join(', ')} are outside split "${split}" of ${info.count} images`,
        'images.indices',
      );
    }
  }
}

function uploadField(index: number): string {
  return `images.upload.${index}`;
}
