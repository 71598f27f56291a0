import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { FsBlobStore, importWebDataset, localTarSources } from '@dinoq/data';
import { dataDir } from '../local-layout';
import { logger } from '../logger';
import { positiveInt } from '../options';
import { progressBar } from './progress-bar';

interface ImportWebDatasetFlags {
  name: string;
  split: string;
  resize?: { width: number; height: number };
  maxSide?: number;
  channels: 1 | 3;
  classes?: string[];
  shardSize: number;
  dataDir?: string;
  progress: boolean;
}

/** `WxH`, both positive integers. */
export function parseResize(value: string): { width: number; height: number } {
  const match = /^(\d+)x(\d+)$/.exec(value);
  const [width, height] = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  if (width < 1 || height < 1) throw new Error(`--resize must be WxH with positive integers, got "${value}"`);
  return { width, height };
}

function parseChannels(value: string): 1 | 3 {
  if (value !== '1' && value !== '3') throw new Error(`--channels must be 1 or 3, got "${value}"`);
  return Number(value) as 1 | 3;
}

/** A classes.txt: line i names class i; a trailing newline is not a class. */
export function readClassNames(file: string): string[] {
  const lines = readFileSync(file, 'utf8')
    .replace(/\r?\n$/, '')
    .split(/\r?\n/);
  const blank = lines.findIndex((line) => line.trim() === '');
  if (blank >= 0) throw new Error(`--classes ${file}: line ${blank + 1} is empty (line i names class i)`);
  return lines.map((line) => line.trim());
}

export function registerImportWebDataset(program: Command): void {
  program
    .command('import-webdataset')
    .description(
      'Import WebDataset tars (<key>.png|jpg|jpeg|webp + <key>.cls holding the class index) as one split',
    )
    .argument('<tar...>', 'tar files, read in the order given')
    .requiredOption('--name <name>', 'dataset name')
    .option('--split <split>', 'split the images become; added to an existing dataset', 'train')
    .option(
      '--resize <WxH>',
      'resize every image to one size (aspect kept, centre-cropped); without it images keep their own sizes',
      parseResize,
    )
    .option(
      '--max-side <n>',
      'images keep their own sizes, but a longer side above n is downscaled to n (aspect kept); not with --resize',
      positiveInt('--max-side'),
    )
    .option('--channels <n>', '1 (grey) or 3 (RGB)', parseChannels, 3)
    .option('--classes <file>', 'classes.txt: line i names class i (default: the index)', readClassNames)
    .option('--shard-size <n>', 'samples per written shard', positiveInt('--shard-size'), 10000)
    .option('--data-dir <dir>', 'local storage root (default $DINOQ_DATA_DIR or .data)')
    .option('--no-progress', 'no progress bar')
    .action(async (tars: string[], o: ImportWebDatasetFlags) => {
      const root = dataDir(o.dataDir);
      const sources = await localTarSources(tars);
      const totalBytes = sources.reduce((sum, source) => sum + (source.bytes ?? 0), 0);
      const bar = o.progress
        ? progressBar('import |{bar}| {percentage}% {images} images, {skipped} skipped')
        : null;
      bar?.start(totalBytes, 0, { images: 0, skipped: 0 });
      const t0 = Date.now();
      const result = await importWebDataset({
        sources,
        store: new FsBlobStore(root),
        name: o.name,
        split: o.split,
        resize: o.resize,
        maxSide: o.maxSide,
        channels: o.channels,
        classNames: o.classes,
        shardSize: o.shardSize,
        onProgress: ({ bytesRead, images, skipped }) => bar?.update(bytesRead, { images, skipped }),
      }).finally(() => bar?.stop());
      if (result.skipped > 0)
        logger.warn({ skipped: result.skippedFiles.slice(0, 20), total: result.skipped }, 'skipped samples');
      logger.info({ dataset: o.name, root, seconds: (Date.now() - t0) / 1000 }, 'imported');
      process.stdout.write(
        `imported ${o.name}/${result.split}: ${result.imported} images, ${result.skipped} skipped, ` +
          `${result.manifest.classes.length} classes into ${root}/datasets/${o.name}\n`,
      );
    });
}
