import sharp from 'sharp';
import { exportAttentionMaps, type ExportImage } from '@dinoq/eval';
import { disposeParams, networkParams } from '@dinoq/dino';
import type { AttentionIndex, AttentionJob } from '@dinoq/jobs';
import { attentionFileKey, runPrefix } from '@dinoq/storage';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import { resolveCheckpoint } from './resolve-checkpoint';

export interface AttentionResult {
  runId: string;
  exportId: string;
  step: number;
  images: number;
  files: number;
}

async function datasetImages(
  ctx: ComputeContext,
  datasetName: string,
  images: { split: string; indices: number[] },
): Promise<ExportImage[]> {
  const { manifest } = await ctx.datasets.manifest(datasetName);
  const split = manifest.splits[images.split];
  if (!split) {
    throw new UnrecoverableJobError(`dataset "${datasetName}" has no split "${images.split}"`);
  }
  const outside = images.indices.filter((index) => index >= split.count);
  if (outside.length > 0) {
    throw new UnrecoverableJobError(
      `indices ${outside.join(', ')} are outside ${datasetName}/${images.split} (${split.count} images)`,
    );
  }
  // Only the prefix of the split that holds the wanted images is decoded.
  const { data } = await ctx.datasets.split(datasetName, images.split, Math.max(...images.indices) + 1);
  const frame = data.width * data.height * data.channels;
  return images.indices.map((index) => ({
    pixels: data.images.subarray(index * frame, (index + 1) * frame),
    width: data.width,
    height: data.height,
    channels: data.channels,
    name: `${images.split}-${index}`,
  }));
}

/** Uploaded PNG/JPEG files, decoded to 8-bit sRGB; only keys inside the run's own prefix are read. */
async function uploadedImages(ctx: ComputeContext, runId: string, keys: string[]): Promise<ExportImage[]> {
  const allowed = runPrefix(runId);
  const images: ExportImage[] = [];
  for (const key of keys) {
    if (!key.startsWith(allowed)) {
      throw new UnrecoverableJobError(`upload key "${key}" is outside ${allowed}`);
    }
    const bytes = await ctx.store.getBytes(key);
    let decoded: { data: Buffer; info: sharp.OutputInfo };
    try {
      decoded = await sharp(bytes)
        .rotate()
        .removeAlpha()
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
    } catch (error) {
      throw new UnrecoverableJobError(`upload ${key} is not a readable image: ${(error as Error).message}`);
    }
    images.push({
      pixels: new Uint8Array(decoded.data.buffer, decoded.data.byteOffset, decoded.data.byteLength),
      width: decoded.info.width,
      height: decoded.info.height,
      channels: decoded.info.channels,
      name: key.slice(key.lastIndexOf('/') + 1),
    });
  }
  return images;
}

/**
 * Last-layer [CLS] attention maps of the teacher (spec §13) for dataset images or uploads, as PNGs
 * under runs/<id>/attention/<exportId>/. index.json is written last, so its presence means the
 * export is complete.
 */
export async function exportAttention(
  ctx: ComputeContext,
  scope: JobScope,
  job: AttentionJob,
): Promise<AttentionResult> {
  const { run, config, checkpoint } = await resolveCheckpoint(ctx, job.runId, job.step);
  const images =
    'split' in job.images
      ? await datasetImages(ctx, run.datasetName, job.images)
      : await uploadedImages(ctx, job.runId, job.images.uploadKeys);
  scope.log(
    'info',
    `run ${job.runId}: attention maps of ${images.length} images at step ${checkpoint.step}`,
    {},
    true,
  );
  scope.throwIfAbandoned();

  const params = networkParams(config, checkpoint.files, 'teacher');
  let exported;
  try {
    exported = await exportAttentionMaps(params, config, images, { threshold: job.threshold });
  } catch (error) {
    // A shape or image problem will not go away on a retry.
    throw new UnrecoverableJobError(`attention export ${job.exportId}: ${(error as Error).message}`);
  } finally {
    disposeParams(params);
  }

  const names = Object.keys(exported.files);
  for (const [i, name] of names.entries()) {
    await ctx.store.putBytes(
      attentionFileKey(job.runId, job.exportId, name),
      exported.files[name],
      'image/png',
    );
    if ((i + 1) % 20 === 0) scope.progress({ phase: 'upload', done: i + 1, total: names.length });
  }
  // The library's index plus where it came from.
  const index: AttentionIndex = {
    ...exported.index,
    runId: job.runId,
    exportId: job.exportId,
    step: checkpoint.step,
    network: 'teacher',
    backend: ctx.backend.name,
    createdAt: new Date().toISOString(),
  };
  await ctx.store.putJson(attentionFileKey(job.runId, job.exportId, 'index.json'), index);
  return {
    runId: job.runId,
    exportId: job.exportId,
    step: checkpoint.step,
    images: images.length,
    files: names.length,
  };
}
