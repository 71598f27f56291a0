import type { FeatureSet } from './knn';

/**
 * Extracted features kept as one binary blob, so a second evaluation of the same checkpoint
 * (another k, the linear probe after k-NN) skips the backbone. Layout:
 *
 *   8 bytes  magic "DQFEAT1\n"
 *   4 bytes  header length H, little-endian uint32
 *   H bytes  JSON header {count, dim, meta}, UTF-8, space-padded so the data is 4-byte aligned
 *   count·dim float32 features, row-major, little-endian
 *   count    int32 labels, little-endian
 */

/** The only store operations the cache needs (a libs/data BlobStore or an object-store adapter fits). */
export interface FeatureBlobStore {
  /** Rejects with an error whose `code` is 'BLOB_NOT_FOUND' when the key is absent. */
  get(key: string): Promise<Uint8Array>;
  put(key: string, bytes: Uint8Array): Promise<void>;
}

/** What the features were computed from (run, step, split, limit, …); a mismatch means recompute. */
export type FeatureMeta = Record<string, string | number | boolean | null>;

const MAGIC = 'DQFEAT1\n';
const PREFIX_BYTES = MAGIC.length + 4;
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

interface Header {
  count: number;
  dim: number;
  meta: FeatureMeta;
}

function byteSwapped(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 4) for (let j = 0; j < 4; j++) out[i + j] = bytes[i + 3 - j];
  return out;
}

function leBytes(data: Float32Array | Int32Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return LITTLE_ENDIAN_HOST ? bytes : byteSwapped(bytes);
}

export function encodeFeatures(set: FeatureSet, meta: FeatureMeta = {}): Uint8Array {
  if (set.features.length !== set.count * set.dim)
    throw new Error(`encodeFeatures: ${set.features.length} floats for ${set.count}×${set.dim}`);
  if (set.labels.length !== set.count)
    throw new Error(`encodeFeatures: ${set.labels.length} labels for ${set.count} rows`);
  let json = JSON.stringify({ count: set.count, dim: set.dim, meta } satisfies Header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((4 - ((PREFIX_BYTES + jsonBytes) % 4)) % 4);
  const header = Buffer.from(json, 'utf8');
  const out = new Uint8Array(PREFIX_BYTES + header.length + 4 * set.count * (set.dim + 1));
  out.set(Buffer.from(MAGIC, 'latin1'), 0);
  new DataView(out.buffer).setUint32(MAGIC.length, header.length, true);
  out.set(header, PREFIX_BYTES);
  const dataStart = PREFIX_BYTES + header.length;
  out.set(leBytes(set.features), dataStart);
  out.set(leBytes(set.labels), dataStart + 4 * set.count * set.dim);
  return out;
}

export function decodeFeatures(
  bytes: Uint8Array,
  source = '(features)',
): { set: FeatureSet; meta: FeatureMeta } {
  const fail = (why: string): never => {
    throw new Error(`feature blob ${source}: ${why}`);
  };
  if (
    bytes.length < PREFIX_BYTES ||
    Buffer.from(bytes.subarray(0, MAGIC.length)).toString('latin1') !== MAGIC
  )
    fail('not a feature blob (bad magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(MAGIC.length, true);
  if (PREFIX_BYTES + headerLength > bytes.length) fail('header runs past the end');
  let header: Header;
  try {
    header = JSON.parse(
      Buffer.from(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength)).toString('utf8'),
    );
  } catch (e) {
    return fail(`header is not JSON (${(e as Error).message})`);
  }
  const { count, dim, meta } = header;
  if (!Number.isInteger(count) || !Number.isInteger(dim) || count < 0 || dim < 0)
    fail(`bad count/dim ${count}/${dim}`);
  const dataStart = PREFIX_BYTES + headerLength;
  const expected = dataStart + 4 * count * (dim + 1);
  if (bytes.length !== expected) fail(`${bytes.length} bytes, expected ${expected} for ${count}×${dim}`);
  // Copy into a fresh, aligned buffer: the input may sit at any offset of a larger buffer, and a
  // Node Buffer's `slice` would return a view into it rather than a copy.
  const data = bytes.subarray(dataStart, expected);
  const raw = LITTLE_ENDIAN_HOST ? new Uint8Array(data) : byteSwapped(data);
  const features = new Float32Array(raw.buffer, 0, count * dim);
  const labels = new Int32Array(raw.buffer, 4 * count * dim, count);
  return { set: { features, labels, count, dim }, meta: meta ?? {} };
}

function sameMeta(a: FeatureMeta, b: FeatureMeta): boolean {
  const keys = Object.keys(b);
  return keys.length === Object.keys(a).length && keys.every((k) => a[k] === b[k]);
}

export function isBlobNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'BLOB_NOT_FOUND';
}

export interface CachedFeatures {
  set: FeatureSet;
  /** True when the blob was read rather than computed. */
  hit: boolean;
}

/**
 * The features under `key` when the stored blob was made with the same `meta`; otherwise
 * `compute()` runs and its result replaces the blob. The key names the run, step and split
 * (e.g. libs/storage's featuresKey); `meta` should carry whatever else changes the features,
 * such as the image limit or the feature kind. A corrupt blob is recomputed, not trusted.
 */
export async function cachedFeatures(
  store: FeatureBlobStore,
  key: string,
  compute: () => Promise<FeatureSet>,
  meta: FeatureMeta = {},
): Promise<CachedFeatures> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await store.get(key);
  } catch (err) {
    if (!isBlobNotFound(err)) throw err;
  }
  if (bytes) {
    try {
      const decoded = decodeFeatures(bytes, key);
      if (sameMeta(decoded.meta, meta)) return { set: decoded.set, hit: true };
    } catch {
      // A blob that does not decode was cut short or written by something else: recompute below.
    }
  }
  const set = await compute();
  await store.put(key, encodeFeatures(set, meta));
  return { set, hit: false };
}
