import sharp from 'sharp';
import { imageAt, splitSampleReader, type DatasetManifest } from '@dinoq/data';
import { exportAttentionMaps, type ExportImage } from '@dinoq/eval';
import { disposeParams, networkParams } from '@dinoq/dino';
import type { AttentionIndex, AttentionJob } from '@dinoq/jobs';
import { attentionFileKey, runPrefix } from '@dinoq/storage';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import { chooseDataMode, describeDataChoice, shardCacheFor } from '../training-data';
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
  scope: JobScope,
  datasetName: string,
  images: { split: string; indices: number[] },
): Promise<ExportImage[]> {
  const { manifest, manifestSha } = await ctx.datasets.manifest(datasetName);
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
  const choice = chooseDataMode(ctx.data, manifest, images.split);
  const held = choice.mode === 'memory' ? await heldImages(ctx, datasetName, images) : null;
  if (choice.mode === 'memory' && !held) {
    choice.mode = 'streaming';
    choice.reason = 'some images of the split are unusable, so held images are not at their sample indices';
  }
  scope.log('info', `attention ${datasetName}/${images.split}: ${describeDataChoice(choice)}`, {
    dataMode: choice.mode,
    decodedBytes: choice.decodedBytes,
  });
  return held ?? (await streamedImages(ctx, datasetName, manifest, manifestSha, images));
}

/** The images from the split's prefix held in memory, or null when loading left some out (indices shift). */
async function heldImages(
  ctx: ComputeContext,
  datasetName: string,
  images: { split: string; indices: number[] },
): Promise<ExportImage[] | null> {
  // Only the prefix of the split that holds the wanted images is decoded.
  const { data } = await ctx.datasets.split(datasetName, images.split, Math.max(...images.indices) + 1);
  if (data.skipped > 0) return null;
  return images.indices.map((index) => ({
    ...imageAt(data, index),
    channels: data.channels,
    name: `${images.split}-${index}`,
  }));
}

/** A few samples read from their shards through the local shard cache, nothing else of the split. */
async function streamedImages(
  ctx: ComputeContext,
  datasetName: string,
  manifest: DatasetManifest,
  manifestSha: string,
  images: { split: string; indices: number[] },
): Promise<ExportImage[]> {
  const cache = await shardCacheFor(ctx, datasetName, manifestSha);
  const reader = splitSampleReader(manifest, images.split, cache);
  const read = await reader.readSamples(images.indices);
  const unusable = images.indices.filter((index) => !read.indices.includes(index));
  if (unusable.length > 0) {
    const { skippedShardReasons, skippedImageReasons } = reader.stats();
    throw new UnrecoverableJobError(
      `images ${unusable.join(', ')} of ${datasetName}/${images.split} are unusable: ` +
        [...skippedShardReasons, ...skippedImageReasons].join('; '),
    );
  }
  return read.indices.map((index, i) => ({
    ...imageAt(read, i),
    channels: read.channels,
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
      ? await datasetImages(ctx, scope, run.datasetName, job.images)
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
