import sharp from 'sharp';

export const MAX_UPLOAD_IMAGES = 16;
export const MAX_UPLOAD_BYTES = 1024 * 1024;

export interface UploadedImage {
  bytes: Buffer;
  format: 'png' | 'jpeg';
  contentType: string;
  extension: string;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DATA_URL = /^data:image\/(png|jpeg|jpg);base64,/i;

export class UploadError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * Decodes one base64 image (optionally a data: URL) and checks that its bytes start like a PNG or a
 * JPEG; `readSize` and `checkDecodes` then read its header and decode its pixels, so a corrupt
 * upload is refused before anything is stored or queued.
 */
export function decodeUpload(encoded: string, field: string): UploadedImage {
  const body = encoded.replace(DATA_URL, '').replace(/\s+/g, '');
  if (body.length === 0) throw new UploadError(field, 'is empty');
  if (body.length % 4 !== 0 || !BASE64.test(body)) throw new UploadError(field, 'is not valid base64');
  const maxEncoded = Math.ceil(MAX_UPLOAD_BYTES / 3) * 4;
  if (body.length > maxEncoded) throw new UploadError(field, `exceeds ${MAX_UPLOAD_BYTES} bytes`);
  const bytes = Buffer.from(body, 'base64');
  if (bytes.byteLength > MAX_UPLOAD_BYTES)
    throw new UploadError(field, `exceeds ${MAX_UPLOAD_BYTES} bytes (${bytes.byteLength})`);
  if (
    bytes.byteLength >= PNG_SIGNATURE.length &&
    bytes.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)
  ) {
    return { bytes, format: 'png', contentType: 'image/png', extension: 'png' };
  }
  if (bytes.byteLength >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return { bytes, format: 'jpeg', contentType: 'image/jpeg', extension: 'jpg' };
  }
  const head = bytes.subarray(0, 8).toString('hex');
  throw new UploadError(field, `is not a PNG or JPEG image (starts with 0x${head})`);
}

/** Largest accepted image, in pixels: attention maps are computed at the run's crop size anyway. */
export const MAX_UPLOAD_PIXELS = 4096 * 4096;

export interface ImageSize {
  width: number;
  height: number;
}

/**
 * Reads the image's size from its header (sharp's metadata decodes no pixels), so a request's
 * pixel total can be checked before anything is decoded.
 */
export async function readSize(upload: UploadedImage, field: string): Promise<ImageSize> {
  let metadata: sharp.Metadata;
  try {
    metadata = await sharp(upload.bytes).metadata();
  } catch (error) {
    throw new UploadError(field, `does not decode as ${upload.format}: ${(error as Error).message}`);
  }
  if (metadata.format !== upload.format)
    throw new UploadError(field, `starts like a ${upload.format} but reads as ${metadata.format}`);
  const { width, height } = metadata;
  if (width * height > MAX_UPLOAD_PIXELS) {
    throw new UploadError(
      field,
      `is ${width}×${height} = ${width * height} pixels, over the limit of ${MAX_UPLOAD_PIXELS} per image`,
    );
  }
  return { width, height };
}

/**
 * Decodes every pixel in one of libuv's threads, so a truncated or corrupt image is an UploadError
 * naming the field. Only the last row is kept: PNG and JPEG decode top to bottom, so reaching it
 * decodes the whole image while libvips streams the rows instead of holding the decoded image.
 */
export async function checkDecodes(upload: UploadedImage, size: ImageSize, field: string): Promise<void> {
  try {
    await sharp(upload.bytes, { failOn: 'truncated', limitInputPixels: MAX_UPLOAD_PIXELS })
      .extract({ left: 0, top: size.height - 1, width: size.width, height: 1 })
      .raw()
      .toBuffer();
  } catch (error) {
    throw new UploadError(field, `does not decode as ${upload.format}: ${(error as Error).message}`);
  }
}
