import sharp from 'sharp';
import type { BlobStore } from '../blob-store';
import { mapLimit } from '../concurrency';
import { DatasetSourceError } from '../errors';
import { MANIFEST_VERSION, tryReadManifest, writeManifest, type DatasetManifest } from '../manifest';
import { ShardWriter } from '../shard-writer';
import { sampleKey } from './fashion-mnist';

/** What every image importer shares: where the split goes and how its images are converted. */
export interface ImageSplitOptions {
  store: BlobStore;
  name: string;
  shardSize?: number;
  /**
   * The split these images become (default 'train'). When the dataset already has a manifest,
   * the split is added to it, so `train` and `val` import with two calls.
   */
  split?: string;
  /** Resize every image to this size (aspect kept, centre-cropped). Without it all images must share one size. */
  resize?: { width: number; height: number };
  channels?: 1 | 3;
  /** Images decoded at once in sharp's thread pool. */
  concurrency?: number;
}

export interface SkippedFile {
  file: string;
  reason: string;
}

export interface ImportImagesResult {
  manifest: DatasetManifest;
  split: string;
  imported: number;
  skipped: number;
  /** Each input left out, with the reason. */
  skippedFiles: SkippedFile[];
}

/** One image to import: `input` is a file path or the encoded bytes. */
export interface ImageToImport {
  /** How skip reasons name it. */
  file: string;
  input: string | Uint8Array;
  label: number;
}

async function toPng(
  input: string | Uint8Array,
  channels: 1 | 3,
  resize: { width: number; height: number } | undefined,
): Promise<{ png: Uint8Array; width: number; height: number }> {
  let img = sharp(input, { autoOrient: true });
  if (resize) img = img.resize(resize.width, resize.height, { fit: 'cover', kernel: 'cubic' });
  const { data, info } = await img
    .removeAlpha()
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .png()
    .toBuffer({ resolveWithObject: true });
  return { png: data, width: info.width, height: info.height };
}

/**
 * One split being imported from encoded images: converts them to PNG samples in input order,
 * writes the shards, keeps the list of skipped inputs, and writes the manifest last. The first
 * image (or the existing manifest, or `resize`) fixes the split's image size.
 */
export class ImageSplitImport {
  readonly split: string;
  readonly channels: 1 | 3;
  readonly skippedFiles: SkippedFile[] = [];
  imported = 0;
  /** The largest label imported so far (-1 before the first). */
  maxLabel = -1;
  private size: { width: number; height: number } | undefined;
  private readonly writer: ShardWriter;

  private constructor(
    private readonly options: ImageSplitOptions,
    /** The dataset's manifest before this import, when it has one. */
    readonly existing: DatasetManifest | undefined,
  ) {
    this.split = options.split ?? 'train';
    this.channels = options.channels ?? 3;
    this.size =
      options.resize ??
      (existing ? { width: existing.imageSize.width, height: existing.imageSize.height } : undefined);
    this.writer = new ShardWriter(options.store, {
      dataset: options.name,
      split: this.split,
      shardSize: options.shardSize ?? 10000,
    });
  }

  /** Reads the existing manifest and refuses an import whose channels or size would not fit it. */
  static async open(options: ImageSplitOptions): Promise<ImageSplitImport> {
    const existing = await tryReadManifest(options.store, options.name);
    const channels = options.channels ?? 3;
    if (existing && existing.imageSize.channels !== channels)
      throw new DatasetSourceError(
        `dataset "${options.name}" exists with ${existing.imageSize.channels} channels, importing ${channels}`,
      );
    const { resize } = options;
    if (
      resize &&
      existing &&
      (existing.imageSize.width !== resize.width || existing.imageSize.height !== resize.height)
    )
      throw new DatasetSourceError(
        `dataset "${options.name}" exists with ${existing.imageSize.width}x${existing.imageSize.height} images, resize asks for ${resize.width}x${resize.height}`,
      );
    return new ImageSplitImport(options, existing);
  }

  get skipped(): number {
    return this.skippedFiles.length;
  }

  skip(file: string, reason: string): void {
    this.skippedFiles.push({ file, reason });
  }

  /** Converts a batch concurrently and writes it in order; unreadable or off-size images are skipped. */
  async add(images: readonly ImageToImport[]): Promise<void> {
    const converted = await mapLimit(images, this.options.concurrency ?? 4, async (image) => {
      try {
        return await toPng(image.input, this.channels, this.options.resize);
      } catch (err) {
        return new Error((err as Error).message.split('\n')[0]);
      }
    });
    for (const [i, c] of converted.entries()) {
      const { file, label } = images[i];
      if (c instanceof Error) {
        this.skip(file, `unreadable: ${c.message}`);
        continue;
      }
      this.size ??= { width: c.width, height: c.height };
      if (c.width !== this.size.width || c.height !== this.size.height) {
        this.skip(file, `size ${c.width}x${c.height} differs from ${this.size.width}x${this.size.height}`);
        continue;
      }
      await this.writer.add({ key: sampleKey(this.imported), image: c.png, label });
      this.imported++;
      this.maxLabel = Math.max(this.maxLabel, label);
    }
  }

  /** Flushes the last shard and writes the manifest with `classes`; `source` names the input in errors. */
  async finish(classes: string[], source: string): Promise<ImportImagesResult> {
    if (!this.size) throw new DatasetSourceError(`${source} has no readable images`);
    const manifest: DatasetManifest = {
      name: this.options.name,
      version: MANIFEST_VERSION,
      imageSize: { ...this.size, channels: this.channels },
      classes,
      splits: { ...this.existing?.splits, [this.split]: await this.writer.finish() },
      createdAt: this.existing?.createdAt ?? new Date().toISOString(),
    };
    await writeManifest(this.options.store, manifest);
    return {
      manifest,
      split: this.split,
      imported: this.imported,
      skipped: this.skipped,
      skippedFiles: this.skippedFiles,
    };
  }
}
