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
 * JPEG; `checkDecodes` then decodes the pixels, so a corrupt upload is refused before anything is
 * stored or queued.
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

/** Largest accepted upload, in pixels: attention maps are computed at the run's crop size anyway. */
export const MAX_UPLOAD_PIXELS = 4096 * 4096;

/** Decodes every pixel (sharp); a truncated or corrupt image is an UploadError naming the field. */
export async function checkDecodes(upload: UploadedImage, field: string): Promise<void> {
  try {
    await sharp(upload.bytes, { failOn: 'truncated', limitInputPixels: MAX_UPLOAD_PIXELS }).raw().toBuffer();
  } catch (error) {
    throw new UploadError(field, `does not decode as ${upload.format}: ${(error as Error).message}`);
  }
}
