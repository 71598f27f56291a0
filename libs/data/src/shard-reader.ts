import { createHash } from 'node:crypto';
import * as tar from 'tar-stream';
import type { BlobStore } from './blob-store';
import { PermanentDataError } from './errors';
import { shardKey, splitOf, type DatasetManifest, type ShardInfo } from './manifest';

/** One sample as read from a shard; fields are absent when the shard has no such member. */
export interface ShardSample {
  key: string;
  /** Encoded image bytes (`.png`, `.jpg`, `.jpeg` or `.webp` member). */
  image?: Uint8Array;
  label?: number;
  mask?: Uint8Array;
}

/** Member extensions read as a sample's image. */
export const IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['png', 'jpg', 'jpeg', 'webp']);

/** A shard whose size or sha256 differs from the manifest's, or that is not a readable tar. */
export class ShardIntegrityError extends PermanentDataError {
  constructor(
    readonly shard: string,
    message: string,
  ) {
    super(`shard ${shard}: ${message}`);
    this.name = 'ShardIntegrityError';
  }
}

/** WebDataset naming: the key is the path up to the first dot of the file name, the rest is the extension. */
export function splitMemberName(name: string): { key: string; ext: string } {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot < 0) return { key: name, ext: '' };
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

/** A `.cls` member's class index. */
export function parseLabel(body: Uint8Array, shard: string, key: string): number {
  const text = Buffer.from(body).toString('ascii').trim();
  if (!/^\d+$/.test(text))
    throw new ShardIntegrityError(
      shard,
      `sample ${key}: .cls member "${text.slice(0, 20)}" is not an integer`,
    );
  return Number(text);
}

/**
 * Yields a tar archive's samples in order, grouping consecutive members that share a key.
 * Members with unknown extensions are ignored, as WebDataset readers do.
 */
export async function* readShardSamples(bytes: Uint8Array, shard = '(shard)'): AsyncGenerator<ShardSample> {
  const extract = tar.extract();
  extract.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  let current: ShardSample | undefined;
  try {
    for await (const entry of extract) {
      const parts: Uint8Array[] = [];
      for await (const part of entry) parts.push(part as Uint8Array);
      if (entry.header.type !== 'file') continue;
      const { key, ext } = splitMemberName(entry.header.name);
      if (current && current.key !== key) {
        yield current;
        current = undefined;
      }
      current ??= { key };
      const body = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      if (IMAGE_EXTENSIONS.has(ext)) current.image = body;
      else if (ext === 'cls') current.label = parseLabel(body, shard, key);
      else if (ext === 'mask.png') current.mask = body;
    }
  } catch (err) {
    if (err instanceof ShardIntegrityError) throw err;
    throw new ShardIntegrityError(shard, `not a readable tar archive (${(err as Error).message})`);
  }
  if (current) yield current;
}

/** Fetches a shard and checks its size and sha256 against the manifest before anything reads it. */
export async function fetchShard(
  store: BlobStore,
  manifest: DatasetManifest,
  shard: ShardInfo,
): Promise<Uint8Array> {
  const key = shardKey(manifest.name, shard.file);
  const bytes = await store.get(key);
  if (bytes.length !== shard.bytes)
    throw new ShardIntegrityError(key, `${bytes.length} bytes, the manifest says ${shard.bytes}`);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== shard.sha256)
    throw new ShardIntegrityError(key, `sha256 ${sha} does not match the manifest's ${shard.sha256}`);
  return bytes;
}

/** Every sample of a split, shard after shard, stopping after `limit` samples. */
export async function* readSplitSamples(
  store: BlobStore,
  manifest: DatasetManifest,
  split: string,
  options: { limit?: number } = {},
): AsyncGenerator<ShardSample> {
  const limit = options.limit ?? Infinity;
  let n = 0;
  for (const shard of splitOf(manifest, split).shards) {
    if (n >= limit) return;
    const bytes = await fetchShard(store, manifest, shard);
    for await (const sample of readShardSamples(bytes, shardKey(manifest.name, shard.file))) {
      if (n >= limit) return;
      n++;
      yield sample;
    }
  }
}
