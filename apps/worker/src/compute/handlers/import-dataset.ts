import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  DatasetSourceError,
  importFashionMnist,
  importImageFolder,
  importWebDataset,
  type DatasetManifest,
  type SkippedFile,
  type TarSource,
} from '@dinoq/data';
import type { ImportJob } from '@dinoq/jobs';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';

export interface ImportResult {
  datasetName: string;
  kind: ImportJob['source']['kind'];
  splits: Record<string, number>;
  classes: number;
  skipped: number;
}

function summary(job: ImportJob, manifest: DatasetManifest, skipped = 0): ImportResult {
  return {
    datasetName: job.datasetName,
    kind: job.source.kind,
    splits: Object.fromEntries(Object.entries(manifest.splits).map(([name, split]) => [name, split.count])),
    classes: manifest.classes.length,
    skipped,
  };
}

/** Writes datasets/<name>/ (shards first, the manifest last) from a known source. */
export async function importDataset(
  ctx: ComputeContext,
  scope: JobScope,
  job: ImportJob,
): Promise<ImportResult> {
  if (job.source.kind === 'fashion-mnist') {
    scope.log('info', `importing Fashion-MNIST as "${job.datasetName}"`, { limit: job.source.limit }, true);
    const manifest = await importFashionMnist({
      store: ctx.store,
      name: job.datasetName,
      limit: job.source.limit,
    });
    return summary(job, manifest);
  }
  // A prefix names a folder: `a/b` and `a/b/` are the same, and neither matches `a/bc/…`.
  const { prefix } = job.source;
  const folder = prefix.endsWith('/') ? prefix : `${prefix}/`;
  if (job.source.kind === 'webdataset') return importBucketTars(ctx, scope, job, folder);
  return importFromBucketFolder(ctx, scope, job, folder);
}

/** The `.tar` objects under `folder`, streamed one after another; a folder without any is a permanent error. */
async function importBucketTars(
  ctx: ComputeContext,
  scope: JobScope,
  job: ImportJob,
  folder: string,
): Promise<ImportResult> {
  const sources: TarSource[] = [];
  for await (const object of ctx.store.listObjects(folder)) {
    if (!object.key.toLowerCase().endsWith('.tar')) continue;
    sources.push({ name: object.key, bytes: object.size, open: () => ctx.store.getStream(object.key) });
  }
  if (sources.length === 0)
    throw new DatasetSourceError(`import ${job.datasetName}: no .tar objects under s3 prefix "${folder}"`);
  const totalBytes = sources.reduce((sum, source) => sum + (source.bytes ?? 0), 0);
  scope.log(
    'info',
    `importing ${sources.length} tars under "${folder}" as "${job.datasetName}"`,
    { totalBytes },
    true,
  );
  const result = await importWebDataset({
    sources,
    store: ctx.store,
    name: job.datasetName,
    onProgress: (progress) => {
      scope.progress({ phase: 'import', ...progress, totalBytes });
      scope.throwIfAbandoned();
    },
  });
  logSkipped(scope, job, result.skippedFiles);
  return summary(job, result.manifest, result.skipped);
}

function logSkipped(scope: JobScope, job: ImportJob, skipped: SkippedFile[]): void {
  if (skipped.length > 0) {
    scope.log('warn', `import ${job.datasetName}: skipped ${skipped.length} files`, {
      skipped: skipped.slice(0, 20),
    });
  }
}

/** `<folder>/<class>/<image>` objects are copied to a temporary folder and imported as an image folder. */
async function importFromBucketFolder(
  ctx: ComputeContext,
  scope: JobScope,
  job: ImportJob,
  folder: string,
): Promise<ImportResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'dinoq-import-'));
  try {
    let files = 0;
    for await (const object of ctx.store.listObjects(folder)) {
      const relative = object.key.slice(folder.length);
      if (relative === '' || relative.endsWith('/')) continue;
      const segments = relative.split('/');
      if (segments.some((segment) => segment === '' || segment === '.' || segment === '..')) {
        throw new UnrecoverableJobError(
          `import ${job.datasetName}: object key "${object.key}" has an unusable path`,
        );
      }
      const target = path.join(dir, ...segments);
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, await ctx.store.getBytes(object.key));
      files++;
      if (files % 100 === 0) scope.progress({ phase: 'download', files });
      scope.throwIfAbandoned();
    }
    if (files === 0)
      throw new UnrecoverableJobError(`import ${job.datasetName}: nothing under s3 prefix "${folder}"`);
    scope.log('info', `importing ${files} files under "${folder}" as "${job.datasetName}"`, {}, true);
    const result = await importImageFolder({ srcDir: dir, store: ctx.store, name: job.datasetName });
    logSkipped(scope, job, result.skippedFiles);
    return summary(job, result.manifest, result.skipped);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
