import type { ImageSource } from '../augment/multi-crop';
import { mapLimit } from '../concurrency';
import { createDecodeCounter, decodeSample, type DecodedSample } from '../decode';
import { shardKey, splitOf, type DatasetManifest, type ShardInfo, type SplitInfo } from '../manifest';
import { readShardSamples, ShardIntegrityError, type ShardSample } from '../shard-reader';
import { PinnedLru } from './pinned-lru';
import type { StreamingSampleOrder } from './sample-order';
import { ShardCache, ShardUnavailableError, type ShardCacheStats } from './shard-cache';

/**
 * Decoded images for a step's batch, read from the shards its samples live in, with only a bounded
 * set of shards in memory. A shard is parsed once into its encoded samples and kept in a byte-
 * bounded LRU; images are decoded on demand for each batch. Decoding the whole shard up front would
 * cost the same (every sample is decoded once per epoch either way) but hold decoded pixels, several
 * times the encoded size, for every open shard.
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
  /**
   * Parsed shards kept in memory, counted in their tar bytes; the shards of batches being read are
   * held until those batches are done. Default: two windows' worth of samples in stored bytes (a
   * batch and its replacements fall within two windows), at least 256 MiB.
   */
  maxOpenShardBytes?: number;
  /** Images decoded at once (default 4); PNGs decode on this thread, other formats in sharp's pool. */
  decodeConcurrency?: number;
}

/** A batch's decoded images in batch order: image b is `images.subarray(b·H·W·C, (b+1)·H·W·C)`. */
export interface StreamingBatchImages extends ImageSource {
  step: number;
  epoch: number;
  /** Global sample index of each image (after replacements), batch order. */
  indices: number[];
  /** Class index per image, −1 where the sample has no label. */
  labels: Int32Array;
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

const MIN_OPEN_SHARD_BYTES = 256 * 1024 * 1024;
const MAX_LISTED_REASONS = 20;

/** A parsed shard: its samples in tar order, or undefined when it had to be skipped. */
type OpenShard = ShardSample[] | undefined;

export class StreamingSplitReader {
  readonly order: StreamingSampleOrder;
  readonly height: number;
  readonly width: number;
  readonly channels: 1 | 3;
  private readonly split: SplitInfo;
  private readonly open: PinnedLru<ShardSample[]>;
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
    this.height = options.manifest.imageSize.height;
    this.width = options.manifest.imageSize.width;
    this.channels = options.channels ?? options.manifest.imageSize.channels;
    const bytesPerSample = this.split.shards.reduce(
      (max, sh) => (sh.count > 0 ? Math.max(max, sh.bytes / sh.count) : max),
      0,
    );
    const twoWindows = Math.ceil(2 * options.order.windowSize * bytesPerSample);
    this.open = new PinnedLru<ShardSample[]>(
      options.maxOpenShardBytes ?? Math.max(MIN_OPEN_SHARD_BYTES, twoWindows),
    );
  }

  get frameBytes(): number {
    return this.height * this.width * this.channels;
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
    const shards = this.order
      .shardsForSteps(batchSize, fromStep, toStep)
      .filter((s) => !this.skippedShards.has(s) && !this.open.has(String(s)))
      .map((s) => this.shardInfo(s));
    await this.options.cache.prefetch(shards);
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

    const frame = this.frameBytes;
    const images = new Uint8Array(batchSize * frame);
    const labels = new Int32Array(batchSize);
    const indices: number[] = [];
    for (const [b, d] of decoded.entries()) {
      const sample = d as Decoded;
      images.set(sample.pixels, b * frame);
      labels[b] = sample.label;
      indices.push(sample.index);
    }
    return {
      step,
      epoch,
      indices,
      labels,
      replaced,
      images,
      count: batchSize,
      height: this.height,
      width: this.width,
      channels: this.channels,
    };
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
    const shards = [...byShard.keys()];
    const opened = await Promise.all(shards.map((s) => this.openShard(s)));
    const jobs: { k: number; shard: number; samples: OpenShard }[] = [];
    for (const [i, shard] of shards.entries())
      for (const k of byShard.get(shard)!) jobs.push({ k, shard, samples: opened[i] });
    await mapLimit(jobs, this.options.decodeConcurrency ?? 4, async ({ k, shard, samples }) => {
      out[k] = await this.decodeOne(indices[k], shard, samples);
    });
    return out;
  }

  private async decodeOne(index: number, shard: number, samples: OpenShard): Promise<Decoded | undefined> {
    if (!samples) return undefined;
    const file = this.shardInfo(shard).file;
    const sample = samples[index - this.order.shardStart(shard)];
    if (!sample)
      return this.skipImage(
        index,
        `${file}/#${index - this.order.shardStart(shard)}`,
        'missing from the shard',
      );
    const counter = createDecodeCounter();
    const d = await decodeSample(
      sample,
      { channels: this.channels, width: this.width, height: this.height },
      counter,
    );
    if (!d) return this.skipImage(index, `${file}/${sample.key}`, counter.skippedReasons[0] ?? 'unusable');
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
      const bytes = await this.options.cache.read(info);
      const samples: ShardSample[] = [];
      for await (const s of readShardSamples(bytes, where)) samples.push(s);
      this.open.set(String(shard), samples, info.bytes);
      return samples;
    } catch (err) {
      if (!(err instanceof ShardUnavailableError || err instanceof ShardIntegrityError)) throw err;
      if (!this.skippedShards.has(shard)) this.skippedShards.set(shard, err.message);
      return undefined;
    }
  }
}

type Decoded = DecodedSample & { index: number };
