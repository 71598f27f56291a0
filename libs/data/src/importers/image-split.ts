import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import type { BlobStore } from '../blob-store';
import { mapLimit } from '../concurrency';
import { decodeImage } from '../decode';
import { DatasetSourceError } from '../errors';
import {
  MANIFEST_VERSION,
  manifestChannels,
  tryReadManifest,
  writeManifest,
  type DatasetManifest,
  type SplitInfo,
} from '../manifest';
import { ShardWriter, type ImageExtension } from '../shard-writer';
import { sampleKey } from './fashion-mnist';

/** What every image importer shares: where the split goes and how its images are stored. */
export interface ImageSplitOptions {
  store: BlobStore;
  name: string;
  shardSize?: number;
  /**
   * The split these images become (default 'train'). When the dataset already has a manifest,
   * the split is added to it, so `train` and `val` import with two calls.
   */
  split?: string;
  /**
   * Resize every image to this size (aspect kept, centre-cropped): a fixed-size dataset. Without
   * it images keep their own sizes, so training crops see each image's own framing and aspect.
   */
  resize?: { width: number; height: number };
  /**
   * Images keep their own sizes, but one whose longer side exceeds this is downscaled to it
   * (aspect kept) and re-encoded; smaller ones are stored as they are. Not with `resize`.
   */
  maxSide?: number;
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

/** An image ready for a shard: its encoded bytes and the size they decode to. */
interface StoredImage {
  bytes: Uint8Array;
  ext: ImageExtension;
  width: number;
  height: number;
}

const asBytes = (buf: Buffer): Uint8Array => new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);

/** Today's fixed-size conversion: resized and centre-cropped, converted to `channels`, as PNG. */
async function resizedPng(
  input: string | Uint8Array,
  channels: 1 | 3,
  resize: { width: number; height: number },
): Promise<StoredImage> {
  const { data, info } = await sharp(input, { autoOrient: true })
    .resize(resize.width, resize.height, { fit: 'cover', kernel: 'cubic' })
    .removeAlpha()
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .png()
    .toBuffer({ resolveWithObject: true });
  return { bytes: asBytes(data), ext: 'png', width: info.width, height: info.height };
}

/** Formats whose bytes are stored as they are; the shard reader reads these extensions. */
const KEPT_FORMATS: Record<string, ImageExtension> = { jpeg: 'jpg', png: 'png', webp: 'webp' };

/**
 * An image at its own size. The original bytes are kept when the shard reader takes the format,
 * no EXIF rotation is pending (training decodes pixels as stored) and no side exceeds `maxSide`;
 * otherwise the image is rotated upright, downscaled to `maxSide` and re-encoded (JPEG stays JPEG
 * at quality 95, the rest become PNG). Channels are converted when training decodes, as for
 * every other sample. Kept bytes are decoded here with the training decoder, so a file that
 * would fail every epoch is skipped once, at import.
 */
async function ownSize(
  input: string | Uint8Array,
  channels: 1 | 3,
  maxSide: number | undefined,
): Promise<StoredImage> {
  const bytes = typeof input === 'string' ? asBytes(await readFile(input)) : input;
  const meta = await sharp(bytes).metadata();
  const keptExt = KEPT_FORMATS[meta.format];
  const upright = (meta.orientation ?? 1) === 1;
  const fits = maxSide === undefined || Math.max(meta.width, meta.height) <= maxSide;
  if (keptExt && upright && fits) {
    const { width, height } = await decodeImage(bytes, channels);
    return { bytes, ext: keptExt, width, height };
  }
  let img = sharp(bytes, { autoOrient: true });
  if (maxSide !== undefined)
    img = img.resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true, kernel: 'cubic' });
  const jpeg = meta.format === 'jpeg';
  const { data, info } = await (jpeg ? img.jpeg({ quality: 95 }) : img.png()).toBuffer({
    resolveWithObject: true,
  });
  return { bytes: asBytes(data), ext: jpeg ? 'jpg' : 'png', width: info.width, height: info.height };
}

/** Refuses options that contradict each other or the dataset the split is added to. */
function checkOptions(options: ImageSplitOptions, existing: DatasetManifest | undefined): void {
  const { name, resize, maxSide } = options;
  const channels = options.channels ?? 3;
  if (resize && maxSide !== undefined)
    throw new DatasetSourceError(`import "${name}": resize and maxSide exclude each other`);
  if (maxSide !== undefined && !(Number.isInteger(maxSide) && maxSide >= 1))
    throw new DatasetSourceError(`import "${name}": maxSide must be a positive integer, got ${maxSide}`);
  if (!existing) return;
  if (manifestChannels(existing) !== channels)
    throw new DatasetSourceError(
      `dataset "${name}" exists with ${manifestChannels(existing)} channels, importing ${channels}`,
    );
  const fixed = existing.imageSize;
  if (fixed && !resize)
    throw new DatasetSourceError(
      `dataset "${name}" exists with ${fixed.width}x${fixed.height} images; import with resize ${fixed.width}x${fixed.height}`,
    );
  if (fixed && resize && (fixed.width !== resize.width || fixed.height !== resize.height))
    throw new DatasetSourceError(
      `dataset "${name}" exists with ${fixed.width}x${fixed.height} images, resize asks for ${resize.width}x${resize.height}`,
    );
  if (!fixed && resize)
    throw new DatasetSourceError(`dataset "${name}" keeps each image's own size; import it without resize`);
}

/**
 * One split being imported from encoded images: stores them as samples in input order (at their
 * own sizes, or resized to one with `resize`), writes the shards, keeps the list of skipped
 * inputs, and writes the manifest last.
 */
export class ImageSplitImport {
  readonly split: string;
  readonly channels: 1 | 3;
  readonly skippedFiles: SkippedFile[] = [];
  imported = 0;
  /** The largest label imported so far (-1 before the first). */
  maxLabel = -1;
  /** Decoded bytes and largest side of the images imported so far (recorded for own-size splits). */
  private decodedBytes = 0;
  private maxSide = 0;
  private readonly writer: ShardWriter;

  private constructor(
    private readonly options: ImageSplitOptions,
    /** The dataset's manifest before this import, when it has one. */
    readonly existing: DatasetManifest | undefined,
  ) {
    this.split = options.split ?? 'train';
    this.channels = options.channels ?? 3;
    this.writer = new ShardWriter(options.store, {
      dataset: options.name,
      split: this.split,
      shardSize: options.shardSize ?? 10000,
    });
  }

  /** Reads the existing manifest and refuses an import whose channels or sizing would not fit it. */
  static async open(options: ImageSplitOptions): Promise<ImageSplitImport> {
    const existing = await tryReadManifest(options.store, options.name);
    checkOptions(options, existing);
    return new ImageSplitImport(options, existing);
  }

  get skipped(): number {
    return this.skippedFiles.length;
  }

  skip(file: string, reason: string): void {
    this.skippedFiles.push({ file, reason });
  }

  /** Converts a batch concurrently and writes it in order; unreadable images are skipped. */
  async add(images: readonly ImageToImport[]): Promise<void> {
    const { resize, maxSide } = this.options;
    const converted = await mapLimit(images, this.options.concurrency ?? 4, async (image) => {
      try {
        return resize
          ? await resizedPng(image.input, this.channels, resize)
          : await ownSize(image.input, this.channels, maxSide);
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
      await this.writer.add({ key: sampleKey(this.imported), image: c.bytes, imageExt: c.ext, label });
      this.imported++;
      this.maxLabel = Math.max(this.maxLabel, label);
      this.decodedBytes += c.width * c.height * this.channels;
      this.maxSide = Math.max(this.maxSide, c.width, c.height);
    }
  }

  /** Flushes the last shard and writes the manifest with `classes`; `source` names the input in errors. */
  async finish(classes: string[], source: string): Promise<ImportImagesResult> {
    if (this.imported === 0) throw new DatasetSourceError(`no readable images in ${source}`);
    const { resize } = this.options;
    const written: SplitInfo = await this.writer.finish();
    const sizing: Pick<DatasetManifest, 'imageSize' | 'channels'> = resize
      ? { imageSize: { ...resize, channels: this.channels } }
      : { channels: this.channels };
    const manifest: DatasetManifest = {
      name: this.options.name,
      version: MANIFEST_VERSION,
      ...sizing,
      classes,
      splits: {
        ...this.existing?.splits,
        [this.split]: resize
          ? written
          : { ...written, decoded: { bytes: this.decodedBytes, maxSide: this.maxSide } },
      },
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
