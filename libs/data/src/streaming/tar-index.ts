import { open, type FileHandle } from 'node:fs/promises';
import { IMAGE_EXTENSIONS, parseLabel, ShardIntegrityError, splitMemberName } from '../shard-reader';

/**
 * Where each sample's members lie in a tar shard, so a reader can keep the index (tens of bytes per
 * sample) in memory and read an image's bytes from the cached shard file when a batch needs it,
 * instead of holding whole shards. The grouping rules are those of `readShardSamples`: consecutive
 * members with the same key (the name up to the first dot of its last path segment) form a sample;
 * `.png`/`.jpg`/`.jpeg`/`.webp` is the image, `.cls` the label, `.mask.png` the mask; other
 * members are ignored.
 *
 * Written here rather than taken from tar-stream, which streams member bodies but does not report
 * where they lie in the archive. Handles ustar names with a prefix, pax extended headers (`path`)
 * and GNU long names, which is what tar writers of WebDataset shards produce.
 */

export interface MemberRange {
  offset: number;
  length: number;
}

export interface IndexedSample {
  key: string;
  image?: MemberRange;
  label?: number;
  mask?: MemberRange;
}

const BLOCK = 512;
const decoder = new TextDecoder();

function text(bytes: Uint8Array, start: number, length: number): string {
  const field = bytes.subarray(start, start + length);
  const end = field.indexOf(0);
  return decoder.decode(end < 0 ? field : field.subarray(0, end));
}

function octal(bytes: Uint8Array, start: number, length: number, shard: string): number {
  const raw = text(bytes, start, length).trim();
  if (raw === '') return 0;
  if (!/^[0-7]+$/.test(raw)) throw new ShardIntegrityError(shard, `tar header field "${raw}" is not octal`);
  return parseInt(raw, 8);
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** The `path` record of a pax extended header ("<len> path=<value>\n" records). */
function paxPath(body: Uint8Array): string | undefined {
  const records = decoder.decode(body);
  let at = 0;
  while (at < records.length) {
    const space = records.indexOf(' ', at);
    if (space < 0) break;
    const length = Number(records.slice(at, space));
    if (!Number.isInteger(length) || length <= 0) break;
    const record = records.slice(space + 1, at + length - 1);
    if (record.startsWith('path=')) return record.slice(5);
    at += length;
  }
  return undefined;
}

/** Random access to an archive's bytes. A returned view is valid until the next call. */
interface ByteSource {
  readonly size: number;
  bytesAt(offset: number, length: number): Promise<Uint8Array>;
}

function memorySource(bytes: Uint8Array): ByteSource {
  return { size: bytes.length, bytesAt: async (offset, length) => bytes.subarray(offset, offset + length) };
}

// Headers are read through a window of this size, so an archive of small members takes one read per
// window rather than one per member, and large member bodies are skipped without being read.
const WINDOW_BYTES = 64 * 1024;

/** A file read through one reused window buffer. */
function fileSource(file: FileHandle, size: number): ByteSource {
  let buffer = Buffer.alloc(WINDOW_BYTES);
  let start = 0;
  let end = 0;
  return {
    size,
    async bytesAt(offset, length) {
      if (offset < start || offset + length > end) {
        if (length > buffer.length) buffer = Buffer.alloc(length);
        const { bytesRead } = await file.read(buffer, 0, Math.min(buffer.length, size - offset), offset);
        start = offset;
        end = offset + bytesRead;
        if (bytesRead < length) throw new Error(`short read: ${bytesRead} of ${length} bytes at ${offset}`);
      }
      return buffer.subarray(offset - start, offset - start + length);
    },
  };
}

/** The samples of a tar archive held in memory, in order, with the byte ranges of their members. */
export function indexShardSamples(bytes: Uint8Array, shard = '(shard)'): Promise<IndexedSample[]> {
  return indexSource(memorySource(bytes), shard);
}

/**
 * The samples of a tar file, read through a small window: memory stays a few tens of KiB
 * whatever the shard's size.
 */
export async function indexShardFile(file: string, shard = file): Promise<IndexedSample[]> {
  const handle = await open(file, 'r');
  try {
    return await indexSource(fileSource(handle, (await handle.stat()).size), shard);
  } finally {
    await handle.close();
  }
}

async function indexSource(source: ByteSource, shard: string): Promise<IndexedSample[]> {
  const samples: IndexedSample[] = [];
  let current: IndexedSample | undefined;
  let longName: string | undefined;
  let at = 0;
  while (at + BLOCK <= source.size) {
    const header = await source.bytesAt(at, BLOCK);
    if (isZeroBlock(header)) break;
    const size = octal(header, 124, 12, shard);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = header[257] === 0x75 /* "ustar" */ ? text(header, 345, 155) : '';
    const headerName = prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100);
    const body = at + BLOCK;
    if (body + size > source.size)
      throw new ShardIntegrityError(shard, `not a readable tar archive (member at ${at} runs past the end)`);
    const next = body + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L') {
      const content = await source.bytesAt(body, size);
      longName = type === 'x' ? (paxPath(content) ?? longName) : text(content, 0, size);
      at = next;
      continue;
    }
    const name = longName ?? headerName;
    longName = undefined;
    at = next;
    if (type !== '0' && type !== '\0' && type !== '7') continue;
    const { key, ext } = splitMemberName(name);
    if (current && current.key !== key) {
      samples.push(current);
      current = undefined;
    }
    current ??= { key };
    const range = { offset: body, length: size };
    if (IMAGE_EXTENSIONS.has(ext)) current.image = range;
    else if (ext === 'cls') current.label = parseLabel(await source.bytesAt(body, size), shard, key);
    else if (ext === 'mask.png') current.mask = range;
  }
  if (current) samples.push(current);
  return samples;
}

/** What an index of this many samples takes in memory, roughly: the LRU's weight for it. */
export function indexBytes(samples: readonly IndexedSample[]): number {
  let bytes = 0;
  for (const s of samples) bytes += 96 + 2 * s.key.length;
  return bytes;
}
