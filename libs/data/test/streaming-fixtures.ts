import { createHash } from 'node:crypto';
import sharp from 'sharp';
import type { BlobStore } from '../src/blob-store';
import {
  MANIFEST_VERSION,
  shardFileName,
  shardKey,
  writeManifest,
  type DatasetManifest,
  type ShardInfo,
} from '../src/manifest';
import { packTar, sampleMembers } from '../src/shard-writer';

/** Fixtures for the streaming tests: tiny sharp-encoded images in real tar shards in a real store. */

export const SIDE = 8;

/** A textured SIDE×SIDE RGB image that differs per index. */
export function pixelsOf(index: number): Uint8Array {
  const px = new Uint8Array(SIDE * SIDE * 3);
  for (let i = 0; i < px.length; i++) px[i] = (index * 37 + i * 11 + ((i * index) % 17) * 5) & 0xff;
  return px;
}

export async function encode(index: number, format: 'png' | 'jpg', side = SIDE): Promise<Uint8Array> {
  const img = sharp(pixelsOf(index).subarray(0, side * side * 3), {
    raw: { width: side, height: side, channels: 3 },
  });
  const buf = await (format === 'png' ? img.png() : img.jpeg({ quality: 90 })).toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** How a sample is stored; the bad kinds are what a reader must skip. */
export type SampleKind = 'png' | 'jpg' | 'truncated-jpg' | 'empty' | 'wrong-extension' | 'wrong-size';

async function membersOf(index: number, kind: SampleKind): Promise<{ name: string; body: Uint8Array }[]> {
  const key = `s${String(index).padStart(5, '0')}`;
  const label = index % 5;
  switch (kind) {
    case 'png':
    case 'jpg':
      return sampleMembers({ key, image: await encode(index, kind), imageExt: kind, label });
    case 'truncated-jpg': {
      const jpeg = await encode(index, 'jpg');
      return sampleMembers({
        key,
        image: jpeg.subarray(0, Math.floor(jpeg.length / 2)),
        imageExt: 'jpg',
        label,
      });
    }
    case 'empty':
      return sampleMembers({ key, image: new Uint8Array(0), imageExt: 'png', label });
    case 'wrong-extension':
      return [
        { name: `${key}.txt`, body: await encode(index, 'png') },
        { name: `${key}.cls`, body: Buffer.from(String(label)) },
      ];
    case 'wrong-size':
      return sampleMembers({ key, image: await encode(index, 'png', SIDE - 2), imageExt: 'png', label });
  }
}

export interface StreamingDatasetSpec {
  name: string;
  /** Samples per shard, in order. */
  shardSizes: number[];
  /** Storage of particular samples (by global index); others alternate png / jpg. */
  kinds?: Record<number, SampleKind>;
}

/** Writes shards and a manifest for split `train`; returns the manifest. */
export async function writeStreamingDataset(
  store: BlobStore,
  spec: StreamingDatasetSpec,
): Promise<DatasetManifest> {
  const shards: ShardInfo[] = [];
  let index = 0;
  for (const [s, size] of spec.shardSizes.entries()) {
    const members = [];
    for (let k = 0; k < size; k++, index++)
      members.push(...(await membersOf(index, spec.kinds?.[index] ?? (index % 2 === 0 ? 'png' : 'jpg'))));
    const bytes = await packTar(members);
    const file = shardFileName('train', s);
    await store.put(shardKey(spec.name, file), bytes);
    shards.push({
      file,
      count: size,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      bytes: bytes.length,
    });
  }
  const manifest: DatasetManifest = {
    name: spec.name,
    version: MANIFEST_VERSION,
    imageSize: { width: SIDE, height: SIDE, channels: 3 },
    classes: ['a', 'b', 'c', 'd', 'e'],
    splits: { train: { count: index, shards } },
    createdAt: '2024-01-01T00:00:00.000Z',
  };
  await writeManifest(store, manifest);
  return manifest;
}

/** A BlobStore that passes through to another and records what was asked of it. */
async function* chunksOf(bytes: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

export class CountingStore implements BlobStore {
  gets: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  /** Keys whose next reads return these bytes instead of the stored ones (consumed in order). */
  readonly tampered = new Map<string, Uint8Array[]>();

  /** Present when built with `streamed`: `get`'s bytes (counted the same) handed out in chunks. */
  readonly getStream?: (key: string) => Promise<AsyncIterable<Uint8Array>>;

  constructor(
    private readonly inner: BlobStore,
    options: { streamed?: boolean } = {},
  ) {
    if (options.streamed) this.getStream = async (key) => chunksOf(await this.get(key), 4096);
  }

  async get(key: string): Promise<Uint8Array> {
    this.gets.push(key);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const bytes = await this.inner.get(key);
      // Let other requests start, so overlapping downloads really overlap.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const replacement = this.tampered.get(key)?.shift();
      return replacement ?? bytes;
    } finally {
      this.inFlight--;
    }
  }

  put(key: string, bytes: Uint8Array): Promise<void> {
    return this.inner.put(key, bytes);
  }

  getsOf(key: string): number {
    return this.gets.filter((k) => k === key).length;
  }
}
