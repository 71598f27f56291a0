import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { DatasetSourceError } from '../errors';
import { ImageSplitImport, type ImageSplitOptions, type ImportImagesResult } from './image-split';

export interface ImportImageFolderOptions extends ImageSplitOptions {
  /** One sub-folder per class, each holding .png / .jpg / .jpeg files. */
  srcDir: string;
}

/** `skippedFiles` name paths relative to srcDir. */
export type ImportImageFolderResult = ImportImagesResult;

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

/**
 * Imports a class-per-folder image tree in a fixed order (classes, then files, by name).
 * Unreadable images, and without `resize` images of another size than the first, are
 * skipped and listed in the result.
 */
export async function importImageFolder(options: ImportImageFolderOptions): Promise<ImportImageFolderResult> {
  const { classes, files } = await listClassFolder(options.srcDir);
  const split = await ImageSplitImport.open(options);
  const { existing } = split;
  if (existing && existing.classes.join('\n') !== classes.join('\n'))
    throw new DatasetSourceError(
      `dataset "${options.name}" exists with classes [${existing.classes.join(', ')}]; ${options.srcDir} has [${classes.join(', ')}]`,
    );
  for (let start = 0; start < files.length; start += CHUNK) {
    const chunk = files.slice(start, start + CHUNK);
    await split.add(chunk.map((f) => ({ ...f, input: path.join(options.srcDir, f.file) })));
  }
  return split.finish(classes, `image folder ${options.srcDir}`);
}
