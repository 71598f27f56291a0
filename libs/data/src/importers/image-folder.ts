import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import seedrandom from 'seedrandom';
import { DatasetSourceError } from '../errors';
import { ImageSplitImport, type ImageSplitOptions, type ImportImagesResult } from './image-split';

export interface ImportImageFolderOptions extends ImageSplitOptions {
  /** One sub-folder per class, each holding .png / .jpg / .jpeg / .webp files. */
  srcDir: string;
}

/** `skippedFiles` name paths relative to srcDir. */
export type ImportImageFolderResult = ImportImagesResult;

const IMAGE_FILE = /\.(png|jpe?g|webp)$/i;
/** The import order's seed: fixed, so importing the same tree again writes the same shards. */
export const IMAGE_FOLDER_SHUFFLE_SEED = 0;
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

/**
 * `items` in a seeded random order (Fisher–Yates): a pure function of the list and the seed. The
 * tree's files are listed class by class; written that way, a streamed epoch, which shuffles
 * shards and then samples within a window, would see few classes per window.
 */
export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const rng = seedrandom(`image-folder:${seed}`);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * Imports a class-per-folder image tree. Class indices follow the folder names' order; the
 * files (listed by class, then name) are written in a seeded shuffle of that list
 * (IMAGE_FOLDER_SHUFFLE_SEED), so every shard mixes the classes and a re-import writes the same
 * shards. Unreadable images are skipped and listed in the result.
 */
export async function importImageFolder(options: ImportImageFolderOptions): Promise<ImportImageFolderResult> {
  const { classes, files } = await listClassFolder(options.srcDir);
  const split = await ImageSplitImport.open(options);
  const { existing } = split;
  if (existing && existing.classes.join('\n') !== classes.join('\n'))
    throw new DatasetSourceError(
      `dataset "${options.name}" exists with classes [${existing.classes.join(', ')}]; ${options.srcDir} has [${classes.join(', ')}]`,
    );
  const order = seededShuffle(files, IMAGE_FOLDER_SHUFFLE_SEED);
  for (let start = 0; start < order.length; start += CHUNK) {
    const chunk = order.slice(start, start + CHUNK);
    await split.add(chunk.map((f) => ({ ...f, input: path.join(options.srcDir, f.file) })));
  }
  return split.finish(classes, `image folder ${options.srcDir}`);
}
