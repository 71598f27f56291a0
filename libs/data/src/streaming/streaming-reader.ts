import { open, type FileHandle } from 'node:fs/promises';
import { ImageSourceBuilder, type ImageSource } from '../images';
import { mapLimit } from '../concurrency';
import { createDecodeCounter, decodeSample, type DecodedSample } from '../decode';
import {
  manifestChannels,
  shardKey,
  splitOf,
  type DatasetManifest,
  type ShardInfo,
  type SplitInfo,
} from '../manifest';
import { ShardIntegrityError, type ShardSample } from '../shard-reader';
import { PinnedLru } from './pinned-lru';
import type { StreamingSampleOrder } from './sample-order';
import { ShardCache, ShardUnavailableError, type PinnedShard, type ShardCacheStats } from './shard-cache';
import { indexBytes, indexShardFile, type IndexedSample, type MemberRange } from './tar-index';

/**
 * Decoded images for a step's batch, read from the cached shard files its samples live in, with
 * memory that does not depend on the shards' sizes. A shard is indexed once (where each sample's
 * members lie in the file: tens of bytes per sample) and the index kept in a byte-bounded LRU; a
 * batch's images are read from the cached files at those offsets and decoded on demand, so neither
 * whole shards nor decoded pixels are held beyond the batches in preparation.
 *
 * Unusable samples: an image that is missing, truncated, undecodable or of the wrong size, or every
 * sample of a shard that could not be fetched intact, is skipped and counted, never fatal. A batch
 * keeps `batchSize` images: its unusable samples, in batch order, are replaced by the usable samples
 * that follow the batch in the epoch's order (wrapping to the epoch's start), in that order. The
 * replacements come after the batch, so a batch never holds a sample twice, and the rule only looks
 * at the batch and what follows it, so a batch stays a pure function of (seed, step) for given
 * stored bytes. Such a sample then appears twice in that epoch (here and at its own position) and
 * the unusable one not at all; the last batch of an epoch draws first on the dropped tail.
 * Errors that may be transient (the store unreachable, a disk error) are thrown, not skipped: a
 * skip must not depend on the network, or a retried step would see other samples.
 */

export interface StreamingReaderOptions {
  manifest: DatasetManifest;
  split: string;
  cache: ShardCache;
  /** Built from the same split (its shard counts are checked). */
  order: StreamingSampleOrder;
  /** Output channels; defaults to the manifest's. */
  channels?: 1 | 3;
  /** Shard indexes kept in memory, in bytes (default 32 MiB: about 300,000 samples' worth). */
  maxOpenShardBytes?: number;
  /** Images decoded at once (default 4); PNGs decode on this thread, other formats in sharp's pool. */
  decodeConcurrency?: number;
}

/** Decoded samples, each image at its own size (images.ts). */
export interface SampleImages extends ImageSource {
  /** Global sample index of each image. */
  indices: number[];
  /** Class index per image, −1 where the sample has no label. */
  labels: Int32Array;
}

/** A batch's decoded images in batch order; image b is the batch's b-th sample (after replacements). */
export interface StreamingBatchImages extends SampleImages {
  step: number;
  epoch: number;
  /** How many of the batch's own samples were unusable and replaced. */
  replaced: number;
}

export interface StreamingReaderStats {
  /** Distinct samples found unusable in shards that could be read. */
  skippedImages: number;
  /** The first few skipped samples, as `<shard file>/<key>: reason`. */
  skippedImageReasons: string[];
  /** Shards given up on (not fetched intact, or not a readable tar); all their samples are skipped. */
  skippedShards: number;
  skippedShardReasons: string[];
  /** Unusable samples replaced in the batches read so far. */
  replacedSamples: number;
  openShards: number;
  openShardBytes: number;
  /** The bound on `openShardBytes`. */
  maxOpenShardBytes: number;
  cache: ShardCacheStats;
}

const DEFAULT_INDEX_BYTES = 32 * 1024 * 1024;
const MAX_LISTED_REASONS = 20;

/** A shard's index: its samples in tar order, or undefined when the shard had to be skipped. */
type OpenShard = IndexedSample[] | undefined;

export class StreamingSplitReader {
  readonly order: StreamingSampleOrder;
  readonly channels: 1 | 3;
  private readonly split: SplitInfo;
  private readonly open: PinnedLru<IndexedSample[]>;
  private readonly opening = new Map<number, Promise<OpenShard>>();
  /** Shards given up on, by index, with the reason. */
  private readonly skippedShards = new Map<number, string>();
  /** Samples found unusable, by global index: remembered so they are not decoded again. */
  private readonly unusable = new Set<number>();
  private readonly skippedImageReasons: string[] = [];
  private skippedImages = 0;
  private replacedSamples = 0;

  constructor(private readonly options: StreamingReaderOptions) {
    this.split = splitOf(options.manifest, options.split);
    this.order = options.order;
    const counts = this.split.shards.map((s) => s.count);
    if (
      counts.length !== options.order.shardCounts.length ||
      counts.some((c, i) => c !== options.order.shardCounts[i])
    )
      throw new Error(
        `sample order was built for other shards than ${options.manifest.name}/${options.split}'s`,
      );
    this.channels = options.channels ?? manifestChannels(options.manifest);
    this.open = new PinnedLru<IndexedSample[]>(options.maxOpenShardBytes ?? DEFAULT_INDEX_BYTES);
  }

  /** The shard entries of the manifest, by index. */
  shardInfo(shard: number): ShardInfo {
    return this.split.shards[shard];
  }

  /**
   * Fetches into the cache the shards that steps [fromStep, toStep) read, in the order they are
   * first needed (see ShardCache.prefetch: failures show in the stats, not here).
   */
  async prefetch(batchSize: number, fromStep: number, toStep: number): Promise<void> {
    await this.prefetchShards(this.order.shardsForSteps(batchSize, fromStep, toStep));
  }

  /** As `prefetch`, for the shards holding global samples [from, to) (a pass in sample order). */
  async prefetchSamples(from: number, to: number): Promise<void> {
    if (to <= from) return;
    const first = this.order.shardOfSample(from);
    const last = this.order.shardOfSample(to - 1);
    await this.prefetchShards(Array.from({ length: last - first + 1 }, (_, k) => first + k));
  }

  /** Step `step`'s batch of `batchSize` decoded images. */
  async readBatch(batchSize: number, step: number): Promise<StreamingBatchImages> {
    const { epoch, start } = this.order.placeBatch(batchSize, step);
    const order = this.order.epochOrder(epoch);
    const own = Array.from(order.subarray(start, start + batchSize));
    const decoded = await this.decodeMany(own);

    const missing: number[] = [];
    for (const [b, d] of decoded.entries()) if (!d) missing.push(b);
    let replaced = 0;
    if (missing.length > 0) {
      const n = this.order.count;
      // Candidates: the positions after the batch, wrapping, up to the batch's start.
      let scanned = 0;
      const span = n - batchSize;
      while (replaced < missing.length) {
        if (scanned >= span)
          throw new Error(
            `${this.options.manifest.name}/${this.options.split}: fewer than ${batchSize} usable samples ` +
              `in epoch ${epoch} (${this.skippedImages} images and ${this.skippedShards.size} shards skipped)`,
          );
        const take = Math.min(span - scanned, Math.max(8, 2 * (missing.length - replaced)));
        const indices = Array.from({ length: take }, (_, k) => order[(start + batchSize + scanned + k) % n]);
        scanned += take;
        for (const d of await this.decodeMany(indices)) {
          if (!d || replaced >= missing.length) continue;
          decoded[missing[replaced++]] = d;
        }
      }
      this.replacedSamples += replaced;
    }

    return { step, epoch, replaced, ...this.imagesOf(decoded as Decoded[]) };
  }

  /**
   * The decoded images of the given global samples, in that order, with unusable ones left out
   * (counted in the stats) rather than replaced: a pass that must see each sample once (evaluation)
   * or a few chosen samples. Each shard's file is read once per call.
   */
  async readSamples(indices: readonly number[]): Promise<SampleImages> {
    const decoded = await this.decodeMany(indices);
    return this.imagesOf(decoded.filter((d): d is Decoded => d !== undefined));
  }

  stats(): StreamingReaderStats {
    return {
      skippedImages: this.skippedImages,
      skippedImageReasons: [...this.skippedImageReasons],
      skippedShards: this.skippedShards.size,
      skippedShardReasons: [...this.skippedShards.values()].slice(0, MAX_LISTED_REASONS),
      replacedSamples: this.replacedSamples,
      openShards: this.open.size,
      openShardBytes: this.open.totalBytes,
      maxOpenShardBytes: this.open.maxBytes,
      cache: this.options.cache.stats(),
    };
  }

  private imagesOf(samples: readonly Decoded[]): SampleImages {
    const bytes = samples.reduce((sum, d) => sum + d.pixels.length, 0);
    const images = new ImageSourceBuilder(this.channels, samples.length, bytes);
    for (const d of samples) images.add(d.pixels, d.height, d.width);
    return {
      indices: samples.map((d) => d.index),
      labels: Int32Array.from(samples, (d) => d.label),
      ...images.finish(),
    };
  }

  private async prefetchShards(shards: readonly number[]): Promise<void> {
    const wanted = shards
      .filter((s) => !this.skippedShards.has(s) && !this.open.has(String(s)))
      .map((s) => this.shardInfo(s));
    await this.options.cache.prefetch(wanted);
  }

  /** Decodes the given global samples, each shard opened once; undefined for an unusable one. */
  private async decodeMany(indices: readonly number[]): Promise<(Decoded | undefined)[]> {
    const byShard = new Map<number, number[]>();
    for (const [k, index] of indices.entries()) {
      if (this.unusable.has(index)) continue;
      const shard = this.order.shardOfSample(index);
      const list = byShard.get(shard);
      if (list) list.push(k);
      else byShard.set(shard, [k]);
    }
    const out: (Decoded | undefined)[] = Array.from({ length: indices.length }, () => undefined);
    await Promise.all([...byShard].map(([shard, ks]) => this.decodeFromShard(shard, ks, indices, out)));
    return out;
  }

  /** Decodes the batch entries `ks` (all of shard `shard`) from the cached file, pinned meanwhile. */
  private async decodeFromShard(
    shard: number,
    ks: readonly number[],
    indices: readonly number[],
    out: (Decoded | undefined)[],
  ): Promise<void> {
    const samples = await this.openShard(shard);
    if (!samples) return;
    const pinned = await this.pinShard(shard);
    if (!pinned) return;
    const file = await open(pinned.path, 'r');
    try {
      await mapLimit(ks, this.options.decodeConcurrency ?? 4, async (k) => {
        out[k] = await this.decodeOne(indices[k], shard, samples, file);
      });
    } finally {
      await file.close();
      pinned.release();
    }
  }

  /** The shard's cached file, pinned; undefined (the shard skipped) when it cannot be had intact. */
  private async pinShard(shard: number): Promise<PinnedShard | undefined> {
    try {
      return await this.options.cache.get(this.shardInfo(shard));
    } catch (err) {
      if (!(err instanceof ShardUnavailableError)) throw err;
      if (!this.skippedShards.has(shard)) this.skippedShards.set(shard, err.message);
      return undefined;
    }
  }

  private async decodeOne(
    index: number,
    shard: number,
    samples: IndexedSample[],
    file: FileHandle,
  ): Promise<Decoded | undefined> {
    const name = this.shardInfo(shard).file;
    const entry = samples[index - this.order.shardStart(shard)];
    if (!entry)
      return this.skipImage(
        index,
        `${name}/#${index - this.order.shardStart(shard)}`,
        'missing from the shard',
      );
    const sample: ShardSample = {
      key: entry.key,
      image: entry.image && (await readRange(file, entry.image)),
      label: entry.label,
      mask: entry.mask && (await readRange(file, entry.mask)),
    };
    const counter = createDecodeCounter();
    const fixed = this.options.manifest.imageSize;
    const d = await decodeSample(
      sample,
      { channels: this.channels, width: fixed?.width, height: fixed?.height },
      counter,
    );
    if (!d) return this.skipImage(index, `${name}/${sample.key}`, counter.skippedReasons[0] ?? 'unusable');
    return { ...d, index };
  }

  private skipImage(index: number, where: string, reason: string): undefined {
    if (this.unusable.has(index)) return undefined;
    this.unusable.add(index);
    this.skippedImages++;
    if (this.skippedImageReasons.length < MAX_LISTED_REASONS)
      this.skippedImageReasons.push(`${where}: ${reason}`);
    return undefined;
  }

  /** The shard's samples from memory, or read from the cache and parsed; undefined when it is skipped. */
  private openShard(shard: number): Promise<OpenShard> {
    if (this.skippedShards.has(shard)) return Promise.resolve(undefined);
    const key = String(shard);
    const held = this.open.use(key);
    if (held) return Promise.resolve(held);
    const running = this.opening.get(shard);
    if (running) return running;
    const p = this.readShard(shard).finally(() => this.opening.delete(shard));
    this.opening.set(shard, p);
    return p;
  }

  private async readShard(shard: number): Promise<OpenShard> {
    const info = this.shardInfo(shard);
    const where = shardKey(this.options.manifest.name, info.file);
    try {
      const pinned = await this.options.cache.get(info);
      let samples: IndexedSample[];
      try {
        samples = await indexShardFile(pinned.path, where);
      } finally {
        pinned.release();
      }
      this.open.set(String(shard), samples, indexBytes(samples));
      return samples;
    } catch (err) {
      if (!(err instanceof ShardUnavailableError || err instanceof ShardIntegrityError)) throw err;
      if (!this.skippedShards.has(shard)) this.skippedShards.set(shard, err.message);
      return undefined;
    }
  }
}

type Decoded = DecodedSample & { index: number };

async function readRange(file: FileHandle, range: MemberRange): Promise<Uint8Array> {
  // A Buffer, as the in-memory loader hands to the decoder, so both report a bad image alike.
  const bytes = Buffer.alloc(range.length);
  const { bytesRead } = await file.read(bytes, 0, range.length, range.offset);
  if (bytesRead !== range.length) throw new Error(`short read: ${bytesRead} of ${range.length} bytes`);
  return bytes;
}
