import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import type { BlobStore } from '../blob-store';
import { mapLimit } from '../concurrency';
import { DatasetSourceError } from '../errors';
import { MANIFEST_VERSION, tryReadManifest, writeManifest, type DatasetManifest } from '../manifest';
import { ShardWriter } from '../shard-writer';
import { sampleKey } from './fashion-mnist';

export interface ImportImageFolderOptions {
  /** One sub-folder per class, each holding .png / .jpg / .jpeg files. */
  srcDir: string;
  store: BlobStore;
  name: string;
  shardSize?: number;
  /**
   * The split these images become (default 'train'). When the dataset already has a manifest,
   * the split is added to it, so `train/` and `val/` folders import with two calls.
   */
  split?: string;
  /** Resize every image to this size (aspect kept, centre-cropped). Without it all images must share one size. */
  resize?: { width: number; height: number };
  channels?: 1 | 3;
  /** Images decoded at once in sharp's thread pool. */
  concurrency?: number;
}

export interface ImportImageFolderResult {
  manifest: DatasetManifest;
  split: string;
  imported: number;
  skipped: number;
  /** Paths relative to srcDir, with the reason. */
  skippedFiles: { file: string; reason: string }[];
}

const IMAGE_FILE = /\.(png|jpe?g)$/i;
const CHUNK = 64;

// Code-point order, not locale order, so the class indices never depend on the machine.
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

async function listClassFolder(
  srcDir: string,
): Promise<{ classes: string[]; files: { file: string; label: number }[] }> {
  const entries = await readdir(srcDir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new DatasetSourceError(`image folder ${srcDir} does not exist`);
    throw error;
  });
  const classes = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort(byCodePoint);
  if (classes.length === 0) throw new DatasetSourceError(`image folder ${srcDir} has no class sub-folders`);
  const files: { file: string; label: number }[] = [];
  for (const [label, cls] of classes.entries()) {
    const names = (await readdir(path.join(srcDir, cls), { withFileTypes: true }))
      .filter((e) => e.isFile() && !e.name.startsWith('.') && IMAGE_FILE.test(e.name))
      .map((e) => e.name)
      .sort(byCodePoint);
    for (const name of names) files.push({ file: `${cls}/${name}`, label });
  }
  return { classes, files };
}

async function toPng(
  file: string,
  channels: 1 | 3,
  resize: { width: number; height: number } | undefined,
): Promise<{ png: Uint8Array; width: number; height: number }> {
  let img = sharp(file, { autoOrient: true });
  if (resize) img = img.resize(resize.width, resize.height, { fit: 'cover', kernel: 'cubic' });
  const { data, info } = await img
    .removeAlpha()
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .png()
    .toBuffer({ resolveWithObject: true });
  return { png: data, width: info.width, height: info.height };
}

/**
 * Imports a class-per-folder image tree in a fixed order (classes, then files, by name).
 * Unreadable images, and without `resize` images of another size than the first, are
 * skipped and listed in the result.
 */
export async function importImageFolder(options: ImportImageFolderOptions): Promise<ImportImageFolderResult> {
  const split = options.split ?? 'train';
  const channels = options.channels ?? 3;
  const { classes, files } = await listClassFolder(options.srcDir);
  const existing = await tryReadManifest(options.store, options.name);
  if (existing) {
    if (existing.classes.join('\n') !== classes.join('\n'))
      throw new DatasetSourceError(
        `dataset "${options.name}" exists with classes [${existing.classes.join(', ')}]; ${options.srcDir} has [${classes.join(', ')}]`,
      );
    if (existing.imageSize.channels !== channels)
      throw new DatasetSourceError(
        `dataset "${options.name}" exists with ${existing.imageSize.channels} channels, importing ${channels}`,
      );
  }
  let size: { width: number; height: number } | undefined =
    options.resize ??
    (existing ? { width: existing.imageSize.width, height: existing.imageSize.height } : undefined);
  if (
    options.resize &&
    existing &&
    (existing.imageSize.width !== options.resize.width || existing.imageSize.height !== options.resize.height)
  )
    throw new DatasetSourceError(
      `dataset "${options.name}" exists with ${existing.imageSize.width}x${existing.imageSize.height} images, resize asks for ${options.resize.width}x${options.resize.height}`,
    );

  const writer = new ShardWriter(options.store, {
    dataset: options.name,
    split,
    shardSize: options.shardSize ?? 10000,
  });
  const skippedFiles: { file: string; reason: string }[] = [];
  let imported = 0;
  for (let start = 0; start < files.length; start += CHUNK) {
    const chunk = files.slice(start, start + CHUNK);
    const converted = await mapLimit(chunk, options.concurrency ?? 4, async (f) => {
      try {
        return await toPng(path.join(options.srcDir, f.file), channels, options.resize);
      } catch (err) {
        return new Error((err as Error).message.split('\n')[0]);
      }
    });
    for (const [i, c] of converted.entries()) {
      const { file, label } = chunk[i];
      if (c instanceof Error) {
        skippedFiles.push({ file, reason: `unreadable: ${c.message}` });
        continue;
      }
      size ??= { width: c.width, height: c.height };
      if (c.width !== size.width || c.height !== size.height) {
        skippedFiles.push({
          file,
          reason: `size ${c.width}x${c.height} differs from ${size.width}x${size.height}`,
        });
        continue;
      }
      await writer.add({ key: sampleKey(imported), image: c.png, label });
      imported++;
    }
  }
  if (!size) throw new DatasetSourceError(`image folder ${options.srcDir} has no readable images`);

  const manifest: DatasetManifest = {
    name: options.name,
    version: MANIFEST_VERSION,
    imageSize: { ...size, channels },
    classes,
    splits: { ...existing?.splits, [split]: await writer.finish() },
    createdAt: existing?.createdAt ?? new Date().toISOString(),
  };
  await writeManifest(options.store, manifest);
  return { manifest, split, imported, skipped: skippedFiles.length, skippedFiles };
}
