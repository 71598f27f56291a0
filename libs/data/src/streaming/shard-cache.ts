import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { isBlobNotFound, type BlobStore } from '../blob-store';
import { mapLimit } from '../concurrency';
import { PermanentDataError } from '../errors';
import { shardKey, type ShardInfo } from '../manifest';
import { PinnedLru } from './pinned-lru';

/**
 * A bounded folder of one data set's shard files, fetched from a BlobStore on demand. A file is
 * trusted only after its size and sha256 matched the manifest: on download, or on first use after
 * a restart. Downloads land in a temporary file that is renamed into place, so a crash never leaves
 * a half file under a shard's name (and leftover temporary files are deleted on open). One process
 * owns a folder at a time: two caches on one folder would evict each other's files in use.
 */

/** A shard whose stored bytes never matched the manifest (or that is missing): readers skip it. */
export class ShardUnavailableError extends PermanentDataError {
  constructor(
    readonly shard: string,
    readonly reason: string,
  ) {
    super(`shard ${shard} is unavailable: ${reason}`);
    this.name = 'ShardUnavailableError';
  }
}

export interface ShardCacheOptions {
  store: BlobStore;
  /** The data set whose shards this folder holds (names the keys in `store`). */
  dataset: string;
  /** The cache folder; give each data set its own. */
  dir: string;
  /** Disk budget. Exceeded only while every cached shard is in use. */
  maxBytes: number;
  /** Downloads that `prefetch` runs at once (default 2); each streams to disk. */
  prefetchConcurrency?: number;
}

/** A shard file pinned against eviction until `release()`. */
export interface PinnedShard {
  readonly file: string;
  readonly path: string;
  release(): void;
}

export interface ShardCacheStats {
  /** Requests served from a file already in the folder. */
  hits: number;
  /** Downloads started (by `get` or `prefetch`). */
  misses: number;
  /** Bytes downloaded, retries included. */
  bytesFetched: number;
  /** Downloads repeated because the first copy did not match the manifest. */
  refetches: number;
  /** Cached files found not to match the manifest (corrupted on disk) and fetched again. */
  corruptFiles: number;
  evictions: number;
  /** Shard files given up on, with the reason. */
  unavailable: { file: string; reason: string }[];
  bytesCached: number;
  filesCached: number;
}

interface CacheEntry {
  /** sha256 the file was checked against; undefined for a file found on open and not yet checked. */
  verifiedSha?: string;
}

const TMP_SUFFIX = '.tmp';
// A shard evicted between its admission and the waiting request's pin is fetched again; more than
// this many rounds means the budget cannot hold even the shards in use.
const MAX_ADMIT_ROUNDS = 4;

export class ShardCache {
  private readonly lru: PinnedLru<CacheEntry>;
  private readonly admitting = new Map<string, Promise<boolean>>();
  private readonly removing = new Map<string, Promise<void>>();
  private readonly unavailable = new Map<string, ShardUnavailableError>();
  private readonly counters = {
    hits: 0,
    misses: 0,
    bytesFetched: 0,
    refetches: 0,
    corruptFiles: 0,
    evictions: 0,
  };
  private readonly prefetchConcurrency: number;
  private readonly prefetchSlots: Semaphore;

  private constructor(private readonly options: ShardCacheOptions) {
    if (!(options.maxBytes > 0))
      throw new Error(`shard cache size must be positive, got ${options.maxBytes}`);
    this.prefetchConcurrency = options.prefetchConcurrency ?? 2;
    if (!Number.isInteger(this.prefetchConcurrency) || this.prefetchConcurrency < 1)
      throw new Error(`prefetch concurrency must be a positive integer, got ${this.prefetchConcurrency}`);
    this.prefetchSlots = new Semaphore(this.prefetchConcurrency);
    this.lru = new PinnedLru<CacheEntry>(options.maxBytes, (file) => this.evict(file));
  }

  /**
   * Opens the folder: deletes unfinished temporary files and adopts the shard files left by an
   * earlier process (oldest first in the LRU); each is checked against the manifest on first use.
   */
  static async open(options: ShardCacheOptions): Promise<ShardCache> {
    const cache = new ShardCache(options);
    await mkdir(options.dir, { recursive: true });
    const found: { file: string; bytes: number; mtimeMs: number }[] = [];
    for (const e of await readdir(options.dir, { withFileTypes: true })) {
      if (!e.isFile()) continue;
      const full = path.join(options.dir, e.name);
      if (e.name.endsWith(TMP_SUFFIX)) {
        await rm(full, { force: true });
        continue;
      }
      const s = await stat(full);
      found.push({ file: e.name, bytes: s.size, mtimeMs: s.mtimeMs });
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.file < b.file ? -1 : 1));
    for (const f of found) cache.lru.set(f.file, {}, f.bytes);
    return cache;
  }

  get dir(): string {
    return this.options.dir;
  }

  get maxBytes(): number {
    return this.options.maxBytes;
  }

  /** The local path of `shard`, fetched and checked first when needed, pinned until released. */
  async get(shard: ShardInfo): Promise<PinnedShard> {
    const file = localName(shard);
    for (let round = 0; round < MAX_ADMIT_ROUNDS; round++) {
      const failed = this.unavailable.get(file);
      if (failed) throw failed;
      if (this.isReady(file, shard)) {
        this.counters.hits++;
        return this.pin(file);
      }
      const hit = await this.admit(shard);
      // Pin in the same turn the admission finished, before anything else can evict the file.
      if (this.isReady(file, shard)) {
        if (hit) this.counters.hits++;
        return this.pin(file);
      }
    }
    throw new Error(
      `shard ${file} was evicted before it could be used ${MAX_ADMIT_ROUNDS} times: ` +
        `the cache of ${this.options.maxBytes} bytes is too small for the shards in use`,
    );
  }

  /**
   * Fetches the shards that are not cached, in the order given, at most `prefetchConcurrency`
   * downloads at once across all calls. Failures are not thrown here: a shard given up on is listed
   * in `stats().unavailable`, and any other error surfaces again when the shard is asked for.
   */
  async prefetch(shards: readonly ShardInfo[]): Promise<{ fetched: number; failed: number }> {
    // `fetched` counts downloads; a file from an earlier run that only needed checking is not one.
    let fetched = 0;
    let failed = 0;
    await mapLimit(shards, this.prefetchConcurrency, async (shard) => {
      const file = localName(shard);
      if (this.unavailable.has(file) || this.isReady(file, shard)) return;
      const release = await this.prefetchSlots.acquire();
      try {
        if (this.isReady(file, shard)) return;
        if (!(await this.admit(shard))) fetched++;
      } catch {
        failed++;
      } finally {
        release();
      }
    });
    return { fetched, failed };
  }

  /** True when `shard` is in the folder and checked. */
  has(shard: ShardInfo): boolean {
    return this.isReady(localName(shard), shard);
  }

  isUnavailable(shard: ShardInfo): boolean {
    return this.unavailable.has(localName(shard));
  }

  stats(): ShardCacheStats {
    return {
      ...this.counters,
      unavailable: [...this.unavailable].map(([file, e]) => ({ file, reason: e.reason })),
      bytesCached: this.lru.totalBytes,
      filesCached: this.lru.size,
    };
  }

  /** Waits for downloads and deletions in progress (for a clean shutdown). */
  async idle(): Promise<void> {
    while (this.admitting.size > 0 || this.removing.size > 0)
      await Promise.allSettled([...this.admitting.values(), ...this.removing.values()]);
  }

  private isReady(file: string, shard: ShardInfo): boolean {
    return this.lru.peek(file)?.verifiedSha === shard.sha256 && !this.admitting.has(file);
  }

  private pin(file: string): PinnedShard {
    this.lru.use(file);
    this.lru.pin(file);
    let released = false;
    return {
      file,
      path: path.join(this.options.dir, file),
      release: () => {
        if (released) return;
        released = true;
        this.lru.unpin(file);
      },
    };
  }

  /**
   * One admission per file at a time; concurrent requests share it. Resolves true when no download
   * was needed.
   */
  private admit(shard: ShardInfo): Promise<boolean> {
    const file = localName(shard);
    const running = this.admitting.get(file);
    if (running) return running.then(() => false);
    // Deleted before anyone awaiting the admission resumes, so they see the file as ready.
    const admission = this.admitOnce(shard).finally(() => this.admitting.delete(file));
    this.admitting.set(file, admission);
    return admission;
  }

  private async admitOnce(shard: ShardInfo): Promise<boolean> {
    const file = localName(shard);
    const full = path.join(this.options.dir, file);
    await this.removing.get(file);
    const entry = this.lru.peek(file);
    if (entry && entry.verifiedSha === undefined) {
      // Left by an earlier process: reuse it only if it still matches the manifest.
      if (await fileMatches(full, shard)) {
        // Unless it was evicted while being read: then the caller asks again.
        if (this.lru.peek(file) === entry) entry.verifiedSha = shard.sha256;
        return true;
      }
      this.counters.corruptFiles++;
      if (this.lru.peek(file) === entry) this.lru.delete(file);
      await rm(full, { force: true });
    } else if (entry && entry.verifiedSha !== shard.sha256) {
      this.lru.delete(file);
      await rm(full, { force: true });
    }

    const key = shardKey(this.options.dataset, shard.file);
    let reason = '';
    this.counters.misses++;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (attempt > 0) this.counters.refetches++;
      const tmp = `${full}.${randomBytes(6).toString('hex')}${TMP_SUFFIX}`;
      try {
        let download: Download;
        try {
          download = await this.download(key, tmp);
        } catch (err) {
          if (!isBlobNotFound(err)) throw err;
          reason = 'not found in the store';
          break;
        }
        this.counters.bytesFetched += download.bytes;
        reason = mismatch(download, shard);
        if (reason === '') {
          await this.place(tmp, file, shard);
          return false;
        }
      } finally {
        await rm(tmp, { force: true });
      }
    }
    const error = new ShardUnavailableError(key, reason);
    this.unavailable.set(file, error);
    throw error;
  }

  /**
   * Writes the object to `tmp`, hashing it on the way: streamed when the store can, so a download
   * holds a chunk of the shard in memory, not the shard.
   */
  private async download(key: string, tmp: string): Promise<Download> {
    const { store } = this.options;
    const hash = createHash('sha256');
    let bytes = 0;
    const counted = async function* (chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
      for await (const chunk of chunks) {
        hash.update(chunk);
        bytes += chunk.length;
        yield chunk;
      }
    };
    const source = store.getStream ? await store.getStream(key) : [await store.get(key)];
    await pipeline(Readable.from(counted(source)), createWriteStream(tmp));
    return { bytes, sha256: hash.digest('hex') };
  }

  /** Renames the checked download into place, then accounts the file (which may evict others). */
  private async place(tmp: string, file: string, shard: ShardInfo): Promise<void> {
    // An eviction of an older copy may still be deleting the file: let it finish first. None can
    // start before `lru.set` below, since the file has no entry until then.
    await this.removing.get(file);
    await rename(tmp, path.join(this.options.dir, file));
    this.lru.set(file, { verifiedSha: shard.sha256 }, shard.bytes);
  }

  private evict(file: string): void {
    this.counters.evictions++;
    const previous = this.removing.get(file) ?? Promise.resolve();
    const removal = previous
      .then(() => rm(path.join(this.options.dir, file), { force: true }))
      .catch(() => undefined)
      .finally(() => {
        if (this.removing.get(file) === removal) this.removing.delete(file);
      });
    this.removing.set(file, removal);
  }
}

/** The file name in the cache folder: the manifest's shard name (`train-000003.tar`). */
function localName(shard: ShardInfo): string {
  return shard.file;
}

/** What a download wrote: its length and sha256. */
interface Download {
  bytes: number;
  sha256: string;
}

function mismatch(download: Download, shard: ShardInfo): string {
  if (download.bytes !== shard.bytes) return `${download.bytes} bytes, the manifest says ${shard.bytes}`;
  if (download.sha256 !== shard.sha256)
    return `sha256 ${download.sha256} does not match the manifest's ${shard.sha256}`;
  return '';
}

async function fileMatches(file: string, shard: ShardInfo): Promise<boolean> {
  try {
    if ((await stat(file)).size !== shard.bytes) return false;
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest('hex') === shard.sha256;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Counts concurrent holders; `acquire` resolves with the function that frees the slot. */
class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];

  constructor(slots: number) {
    this.free = slots;
  }

  async acquire(): Promise<() => void> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    };
  }
}
