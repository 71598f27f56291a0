import sharp from 'sharp';
import { decodePng, isPng, type RawImage } from './png';
import type { ShardSample } from './shard-reader';

/** How many samples decoded and which were skipped; one counter is shared across a whole pass. */
export interface DecodeCounter {
  decoded: number;
  skipped: number;
  /** The first few skipped keys, enough to find the bad files. */
  skippedKeys: string[];
  /** Why each of `skippedKeys` was skipped (same order). */
  skippedReasons: string[];
}

const MAX_SKIPPED_KEYS = 20;

export function createDecodeCounter(): DecodeCounter {
  return { decoded: 0, skipped: 0, skippedKeys: [], skippedReasons: [] };
}

/** Adds `from`'s counts to `into`, keeping `into`'s key list in the order the merges happen. */
export function mergeDecodeCounter(into: DecodeCounter, from: DecodeCounter): void {
  into.decoded += from.decoded;
  into.skipped += from.skipped;
  for (const [i, key] of from.skippedKeys.entries()) {
    if (into.skippedKeys.length >= MAX_SKIPPED_KEYS) break;
    into.skippedKeys.push(key);
    into.skippedReasons.push(from.skippedReasons[i]);
  }
}

function countSkip(counter: DecodeCounter, key: string, reason: string): undefined {
  counter.skipped++;
  if (counter.skippedKeys.length < MAX_SKIPPED_KEYS) {
    counter.skippedKeys.push(key);
    counter.skippedReasons.push(reason);
  }
  return undefined;
}

export interface DecodedSample {
  key: string;
  /** Interleaved 8-bit pixels, height × width × channels. */
  pixels: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
  /** −1 when the sample has no label. */
  label: number;
  /** Single-channel mask, same size as the image, when the sample has one. */
  mask?: Uint8Array;
}

export interface DecodeOptions {
  /** Output channels: gray images are replicated to 3, colour images reduced to luma for 1; alpha is dropped. */
  channels: 1 | 3;
  /** When given (a fixed-size dataset), an image of another size is skipped. */
  width?: number;
  height?: number;
}

function convertChannels(img: RawImage, channels: 1 | 3): Uint8Array {
  const { data, width, height, channels: from } = img;
  const n = width * height;
  if (from === channels) return data;
  const out = new Uint8Array(n * channels);
  const hasColour = from >= 3;
  for (let i = 0; i < n; i++) {
    const s = i * from;
    if (channels === 1) {
      out[i] = hasColour ? Math.round(0.299 * data[s] + 0.587 * data[s + 1] + 0.114 * data[s + 2]) : data[s];
    } else if (hasColour) {
      out[i * 3] = data[s];
      out[i * 3 + 1] = data[s + 1];
      out[i * 3 + 2] = data[s + 2];
    } else {
      out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[s];
    }
  }
  return out;
}

/** Decodes any format sharp reads into 8-bit pixels with the requested channel count. */
export async function decodeImage(bytes: Uint8Array, channels: 1 | 3): Promise<RawImage> {
  if (isPng(bytes)) {
    try {
      const img = decodePng(bytes);
      return { ...img, data: convertChannels(img, channels), channels };
    } catch {
      // Fall through: sharp reads every PNG variant and gives the definitive verdict on corrupt ones.
    }
  }
  const { data, info } = await sharp(bytes)
    .removeAlpha()
    .toColourspace(channels === 1 ? 'b-w' : 'srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== channels) throw new Error(`decoded to ${info.channels} channels, wanted ${channels}`);
  return {
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    width: info.width,
    height: info.height,
    channels,
  };
}

/**
 * Decodes one sample. A missing, corrupt or wrongly sized image is skipped and counted rather
 * than thrown: one bad file must not stop a training run.
 */
export async function decodeSample(
  sample: ShardSample,
  options: DecodeOptions,
  counter: DecodeCounter,
): Promise<DecodedSample | undefined> {
  if (!sample.image) return countSkip(counter, sample.key, 'no image member');
  let img: RawImage;
  try {
    img = await decodeImage(sample.image, options.channels);
  } catch (err) {
    return countSkip(counter, sample.key, `undecodable: ${(err as Error).message.split('\n')[0]}`);
  }
  if (
    (options.width !== undefined && img.width !== options.width) ||
    (options.height !== undefined && img.height !== options.height)
  )
    return countSkip(
      counter,
      sample.key,
      `size ${img.width}x${img.height}, expected ${options.width}x${options.height}`,
    );
  let mask: Uint8Array | undefined;
  if (sample.mask) {
    try {
      const m = await decodeImage(sample.mask, 1);
      if (m.width !== img.width || m.height !== img.height) throw new Error(`mask is ${m.width}x${m.height}`);
      mask = m.data;
    } catch (err) {
      return countSkip(counter, sample.key, `bad mask: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  counter.decoded++;
  return {
    key: sample.key,
    pixels: img.data,
    width: img.width,
    height: img.height,
    channels: options.channels,
    label: sample.label ?? -1,
    ...(mask ? { mask } : {}),
  };
}

/** Encodes 8-bit gray or RGB pixels as a baseline JPEG (for generated test and benchmark images). */
export async function encodeJpeg(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 1 | 3,
  quality: number,
): Promise<Uint8Array> {
  const buf = await sharp(pixels, { raw: { width, height, channels } }).jpeg({ quality }).toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
