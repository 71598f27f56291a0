import { createHash } from 'node:crypto';
import * as tar from 'tar-stream';
import type { BlobStore } from './blob-store';
import { shardFileName, shardKey, type ShardInfo, type SplitInfo } from './manifest';

/** Extensions an image member is written with (shard-reader reads these and `.jpeg`). */
export type ImageExtension = 'png' | 'jpg' | 'webp';

/** One sample as stored: `<key>.<imageExt>`, `<key>.cls`, optional `<key>.mask.png`. */
export interface SampleToWrite {
  /** WebDataset key: no dots (the first dot starts the member's extension). */
  key: string;
  image: Uint8Array;
  imageExt?: ImageExtension;
  /** Class index; omitted for unlabelled data. */
  label?: number;
  mask?: Uint8Array;
}

const KEY_PATTERN = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
// Fixed member metadata so the same samples always give byte-identical shards (and hashes).
const MEMBER_HEADER = { mode: 0o644, mtime: new Date(0), uid: 0, gid: 0, uname: '', gname: '' };

/** Builds a whole tar archive in memory (a 28-px shard of 10k samples is ~20 MB). */
export async function packTar(members: { name: string; body: Uint8Array }[]): Promise<Uint8Array> {
  const pack = tar.pack();
  const chunks: Uint8Array[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => {
      chunks.push(c as Uint8Array);
    });
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const m of members) pack.entry({ ...MEMBER_HEADER, name: m.name, size: m.body.length }, m.body);
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function sampleMembers(s: SampleToWrite): { name: string; body: Uint8Array }[] {
  if (!KEY_PATTERN.test(s.key))
    throw new Error(`invalid sample key "${s.key}": use letters, digits, "_", "-" and "/" (no dots)`);
  const members = [{ name: `${s.key}.${s.imageExt ?? 'png'}`, body: s.image }];
  if (s.label !== undefined) {
    if (!Number.isInteger(s.label) || s.label < 0)
      throw new Error(`sample ${s.key}: label must be a non-negative integer, got ${s.label}`);
    members.push({ name: `${s.key}.cls`, body: Buffer.from(String(s.label), 'ascii') });
  }
  if (s.mask) members.push({ name: `${s.key}.mask.png`, body: s.mask });
  return members;
}

/**
 * Writes one split as consecutive shards of `shardSize` samples (`<split>-000000.tar`, …),
 * each hashed as it is stored. `finish()` flushes the last partial shard and returns the
 * split's manifest entry.
 */
export class ShardWriter {
  private readonly shards: ShardInfo[] = [];
  private pending: SampleToWrite[] = [];
  private total = 0;
  private finished = false;

  constructor(
    private readonly store: BlobStore,
    private readonly options: { dataset: string; split: string; shardSize: number },
  ) {
    if (!Number.isInteger(options.shardSize) || options.shardSize < 1)
      throw new Error(`shardSize must be a positive integer, got ${options.shardSize}`);
  }

  async add(sample: SampleToWrite): Promise<void> {
    if (this.finished)
      throw new Error(`shard writer for ${this.options.dataset}/${this.options.split} is finished`);
    sampleMembers(sample);
    this.pending.push(sample);
    if (this.pending.length >= this.options.shardSize) await this.flush();
  }

  async finish(): Promise<SplitInfo> {
    if (!this.finished && this.pending.length > 0) await this.flush();
    this.finished = true;
    return { count: this.total, shards: [...this.shards] };
  }

  private async flush(): Promise<void> {
    const samples = this.pending;
    this.pending = [];
    const file = shardFileName(this.options.split, this.shards.length);
    const bytes = await packTar(samples.flatMap(sampleMembers));
    await this.store.put(shardKey(this.options.dataset, file), bytes);
    this.shards.push({
      file,
      count: samples.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
    });
    this.total += samples.length;
  }
}
