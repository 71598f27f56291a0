/**
 * The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {k: v}}`
 * padded with spaces, then the raw little-endian tensor bytes; offsets are relative to the
 * start of the data and must cover it exactly, without holes or overlaps.
 *
 * Written by hand: the only npm package of that name is an unmaintained single 0.0.1 release,
 * and the format is small enough that owning it costs less than a dependency.
 */

export type SafetensorsDtype = 'float32' | 'int32';

export interface Float32HostTensor {
  dtype: 'float32';
  shape: number[];
  data: Float32Array;
}

export interface Int32HostTensor {
  dtype: 'int32';
  shape: number[];
  data: Int32Array;
}

/** A tensor in host memory, row-major. */
export type HostTensor = Float32HostTensor | Int32HostTensor;

export type SafetensorsMetadata = Record<string, string>;

export interface DecodedSafetensors {
  tensors: Map<string, HostTensor>;
  metadata: SafetensorsMetadata;
}

const HEADER_LENGTH_BYTES = 8;
/** Same bound as the reference reader: refuses to parse absurd headers from corrupt files. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const FILE_DTYPE: Record<SafetensorsDtype, 'F32' | 'I32'> = { float32: 'F32', int32: 'I32' };

const BYTES_PER_ELEMENT: Record<string, number> = { F32: 4, I32: 4, F16: 2, BF16: 2, F64: 8, I64: 8 };

function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function validShape(shape: unknown): shape is number[] {
  return Array.isArray(shape) && shape.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Raw bytes of a typed array in little-endian order. */
function littleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return LITTLE_ENDIAN_HOST ? bytes : swapped(bytes, 4);
}

function swapped(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width)
    for (let j = 0; j < width; j++) out[i + j] = bytes[i + width - 1 - j];
  return out;
}

/**
 * Serialises tensors in a fixed order, so equal inputs give identical bytes; the tensor order and
 * padding are those of the reference writer. Float data is copied bit for bit, NaN payloads and -0 included.
 */
export function encodeSafetensors(
  tensors: ReadonlyMap<string, HostTensor>,
  metadata?: SafetensorsMetadata,
): Uint8Array {
  // The reference writer's order: float32 before int32, then by name (code points).
  const rank = (name: string) => (tensors.get(name)!.dtype === 'float32' ? 0 : 1);
  const names = [...tensors.keys()].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        throw new Error(`safetensors metadata "${k}" must be a string, got ${typeof v}`);
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (name.length === 0 || name === METADATA_KEY)
      throw new Error(`safetensors: invalid tensor name "${name}"`);
    const fileDtype = FILE_DTYPE[t.dtype];
    if (!fileDtype) throw new Error(`safetensors: tensor "${name}" has unsupported dtype ${String(t.dtype)}`);
    const expectedArray = t.dtype === 'float32' ? Float32Array : Int32Array;
    if (!(t.data instanceof expectedArray)) {
      throw new Error(
        `safetensors: tensor "${name}" is ${t.dtype} but its data is a ${t.data.constructor.name}`,
      );
    }
    if (!validShape(t.shape)) throw new Error(`safetensors: tensor "${name}" has invalid shape [${t.shape}]`);
    if (elementCount(t.shape) !== t.data.length) {
      throw new Error(
        `safetensors: tensor "${name}" has shape [${t.shape}] (${elementCount(t.shape)} elements) ` +
          `but ${t.data.length} values`,
      );
    }
    header[name] = { dtype: fileDtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // The data starts 8-byte aligned, so readers may view it in place.
  const headerLength = Math.ceil((HEADER_LENGTH_BYTES + json.length) / 8) * 8 - HEADER_LENGTH_BYTES;
  const out = new Uint8Array(HEADER_LENGTH_BYTES + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, HEADER_LENGTH_BYTES);
  out.fill(0x20, HEADER_LENGTH_BYTES + json.length, HEADER_LENGTH_BYTES + headerLength);
  let pos = HEADER_LENGTH_BYTES + headerLength;
  for (const name of names) {
    const bytes = littleEndianBytes(tensors.get(name)!.data);
    out.set(bytes, pos);
    pos += bytes.length;
  }
  return out;
}

interface HeaderEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(bytes: Uint8Array): {
  entries: HeaderEntry[];
  metadata: SafetensorsMetadata;
  dataStart: number;
} {
  if (bytes.length < HEADER_LENGTH_BYTES) {
    throw new Error(`safetensors: truncated file: ${bytes.length} bytes, the header length alone takes 8`);
  }
  const declared = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`safetensors: header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLength = Number(declared);
  const dataStart = HEADER_LENGTH_BYTES + headerLength;
  if (dataStart > bytes.length) {
    throw new Error(
      `safetensors: truncated file: header declares ${headerLength} bytes but only ${bytes.length - 8} follow`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    throw new Error(`safetensors: header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new Error('safetensors: header must be a JSON object');
  }
  const metadata: SafetensorsMetadata = {};
  const entries: HeaderEntry[] = [];
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new Error('safetensors: __metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`safetensors: __metadata__ "${k}" must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof entry !== 'object' || entry === null)
      throw new Error(`safetensors: tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string') throw new Error(`safetensors: tensor "${name}" has no dtype`);
    if (!validShape(shape)) throw new Error(`safetensors: tensor "${name}" has an invalid shape`);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw new Error(`safetensors: tensor "${name}" has invalid data_offsets`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin)
      throw new Error(`safetensors: tensor "${name}" has data_offsets [${begin}, ${end}] with end < begin`);
    entries.push({ name, dtype, shape, begin, end });
  }
  return { entries, metadata, dataStart };
}

/** Checks the offsets tile the data exactly: in range, no overlaps, no holes. */
function checkLayout(entries: HeaderEntry[], dataLength: number): void {
  for (const e of entries) {
    if (e.end > dataLength) {
      throw new Error(
        `safetensors: tensor "${e.name}" data_offsets [${e.begin}, ${e.end}] run past the ${dataLength} data bytes ` +
          '(truncated file or bad offsets)',
      );
    }
    const width = BYTES_PER_ELEMENT[e.dtype];
    if (width !== undefined && e.end - e.begin !== elementCount(e.shape) * width) {
      throw new Error(
        `safetensors: tensor "${e.name}" (${e.dtype}, shape [${e.shape}]) needs ` +
          `${elementCount(e.shape) * width} bytes but data_offsets span ${e.end - e.begin}`,
      );
    }
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  let previous = '';
  for (const e of sorted) {
    if (e.begin < expected) {
      throw new Error(`safetensors: tensors "${previous}" and "${e.name}" overlap at byte ${e.begin}`);
    }
    if (e.begin > expected) {
      throw new Error(`safetensors: unused bytes ${expected}..${e.begin} before tensor "${e.name}"`);
    }
    expected = e.end;
    previous = e.name;
  }
  if (expected !== dataLength) {
    throw new Error(`safetensors: ${dataLength - expected} trailing data bytes not covered by any tensor`);
  }
}

/**
 * Copies elements of `width` bytes into a fresh, aligned buffer of exactly their size, in host
 * byte order. `new Uint8Array(raw)` always copies; `raw.slice()` would not when `raw` is a Node
 * Buffer (its `slice` returns a view, whose `.buffer` is the whole pool or file).
 */
function hostBytes(raw: Uint8Array, width: number): ArrayBuffer {
  const copy = LITTLE_ENDIAN_HOST ? new Uint8Array(raw) : swapped(raw, width);
  return copy.buffer as ArrayBuffer;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

function decodeTensor(e: HeaderEntry, raw: Uint8Array): HostTensor {
  const n = elementCount(e.shape);
  switch (e.dtype) {
    case 'F32':
      return { dtype: 'float32', shape: e.shape, data: new Float32Array(hostBytes(raw, 4)) };
    case 'I32':
      return { dtype: 'int32', shape: e.shape, data: new Int32Array(hostBytes(raw, 4)) };
    case 'F64': {
      const src = new Float64Array(hostBytes(raw, 8));
      return { dtype: 'float32', shape: e.shape, data: Float32Array.from(src) };
    }
    case 'F16': {
      const src = new Uint16Array(hostBytes(raw, 2));
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = halfToFloat(src[i]);
      return { dtype: 'float32', shape: e.shape, data };
    }
    case 'BF16': {
      // bfloat16 is the upper half of a float32, so widening is exact (payloads included).
      const src = new Uint16Array(hostBytes(raw, 2));
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return { dtype: 'float32', shape: e.shape, data: new Float32Array(bits.buffer) };
    }
    case 'I64': {
      const src = new BigInt64Array(hostBytes(raw, 8));
      const data = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i];
        if (v < -2147483648n || v > 2147483647n) {
          throw new Error(
            `safetensors: tensor "${e.name}" (I64) holds ${v} at index ${i}, outside the int32 range`,
          );
        }
        data[i] = Number(v);
      }
      return { dtype: 'int32', shape: e.shape, data };
    }
    default:
      throw new Error(
        `safetensors: tensor "${e.name}" has dtype ${e.dtype}; supported: F32, F16, BF16, F64 (read as float32), ` +
          'I32, I64 (read as int32)',
      );
  }
}

/**
 * Parses and validates a safetensors file; every tensor gets its own freshly allocated array.
 * `bytes` may be any Uint8Array: a view at any offset of a larger buffer, or a Node Buffer (which
 * `fs.readFileSync` and the S3 client may return as a slice of a shared pool).
 */
export function decodeSafetensors(bytes: Uint8Array): DecodedSafetensors {
  const { entries, metadata, dataStart } = parseHeader(bytes);
  const dataLength = bytes.length - dataStart;
  checkLayout(entries, dataLength);
  const tensors = new Map<string, HostTensor>();
  for (const e of entries) {
    tensors.set(e.name, decodeTensor(e, bytes.subarray(dataStart + e.begin, dataStart + e.end)));
  }
  return { tensors, metadata };
}
