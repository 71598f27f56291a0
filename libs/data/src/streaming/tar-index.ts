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

function isZeroBlock(bytes: Uint8Array, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (bytes[i] !== 0) return false;
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

/** The samples of a tar archive in order, with the byte ranges of their members. */
export function indexShardSamples(bytes: Uint8Array, shard = '(shard)'): IndexedSample[] {
  const samples: IndexedSample[] = [];
  let current: IndexedSample | undefined;
  let longName: string | undefined;
  let at = 0;
  while (at + BLOCK <= bytes.length) {
    if (isZeroBlock(bytes, at)) break;
    const size = octal(bytes, at + 124, 12, shard);
    const type = String.fromCharCode(bytes[at + 156] || 48);
    const body = at + BLOCK;
    if (body + size > bytes.length)
      throw new ShardIntegrityError(shard, `not a readable tar archive (member at ${at} runs past the end)`);
    const next = body + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L') {
      const content = bytes.subarray(body, body + size);
      longName = type === 'x' ? (paxPath(content) ?? longName) : text(content, 0, size);
      at = next;
      continue;
    }
    const prefix = bytes[at + 257] === 0x75 /* "ustar" */ ? text(bytes, at + 345, 155) : '';
    const name = longName ?? (prefix ? `${prefix}/${text(bytes, at, 100)}` : text(bytes, at, 100));
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
    else if (ext === 'cls') current.label = parseLabel(bytes.subarray(body, body + size), shard, key);
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
