import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { PermanentDataError } from '../errors';

/**
 * IDX (the MNIST container): 2 zero bytes, a type byte (0x08 = unsigned byte), the number of
 * dimensions, then one big-endian uint32 size per dimension and the data in row-major order.
 */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export class IdxFormatError extends PermanentDataError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'IdxFormatError';
  }
}

const UBYTE = 0x08;

/** Parses an IDX unsigned-byte array; `expectDims` checks the magic's dimension count. */
export function parseIdx(bytes: Uint8Array, file: string, expectDims?: number): IdxArray {
  if (bytes.length < 4) throw new IdxFormatError(file, `too short for an IDX header (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  const ndims = bytes[3];
  if (
    bytes[0] !== 0 ||
    bytes[1] !== 0 ||
    bytes[2] !== UBYTE ||
    (expectDims !== undefined && ndims !== expectDims)
  ) {
    const want =
      expectDims === undefined ? '0x000008nn' : `0x${(0x800 + expectDims).toString(16).padStart(8, '0')}`;
    throw new IdxFormatError(
      file,
      `bad magic number 0x${magic.toString(16).padStart(8, '0')}, expected ${want}`,
    );
  }
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) throw new IdxFormatError(file, `truncated header (${bytes.length} bytes)`);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - headerBytes !== size)
    throw new IdxFormatError(
      file,
      `dimensions ${dims.join('x')} need ${size} data bytes, found ${bytes.length - headerBytes}`,
    );
  return { dims, data: bytes.subarray(headerBytes) };
}

/** Reads an IDX file, gunzipping it when it starts with the gzip magic. */
export async function readIdxFile(file: string, expectDims?: number): Promise<IdxArray> {
  let bytes: Uint8Array = await readFile(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new IdxFormatError(file, `corrupt gzip data (${(err as Error).message})`);
    }
  }
  return parseIdx(bytes, file, expectDims);
}

/** An image file (N×H×W) and its label file (N), checked against each other. */
export async function readIdxImagesAndLabels(
  imagesFile: string,
  labelsFile: string,
  numClasses: number,
): Promise<{ images: Uint8Array; labels: Uint8Array; count: number; height: number; width: number }> {
  const images = await readIdxFile(imagesFile, 3);
  const labels = await readIdxFile(labelsFile, 1);
  const [count, height, width] = images.dims;
  if (labels.dims[0] !== count)
    throw new IdxFormatError(labelsFile, `${labels.dims[0]} labels but ${imagesFile} has ${count} images`);
  const bad = labels.data.findIndex((l) => l >= numClasses);
  if (bad >= 0)
    throw new IdxFormatError(
      labelsFile,
      `label ${labels.data[bad]} at index ${bad} is not below ${numClasses}`,
    );
  return { images: images.data, labels: labels.data, count, height, width };
}
