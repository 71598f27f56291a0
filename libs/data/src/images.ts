/**
 * Decoded images back to back in one buffer, each at its own size: image i is
 * `heights[i] × widths[i] × channels` interleaved 8-bit pixels (HWC) starting at byte `offsets[i]`.
 * Sizes and offsets live in typed arrays, not per-image objects, so a split of 100k images costs
 * 1.6 MB of layout on top of its pixels. A fixed-size dataset is the case where every entry agrees.
 */
export interface ImageSource {
  images: Uint8Array;
  /** Images in use; the layout arrays may be longer (a split cut to its first images keeps them). */
  count: number;
  channels: 1 | 3;
  /** Byte offset of each image in `images` (float64: a split may pass 4 GiB). */
  offsets: Float64Array;
  heights: Uint32Array;
  widths: Uint32Array;
}

/** One image of a source: its pixels (a view, not a copy) and size. */
export interface ImageView {
  pixels: Uint8Array;
  height: number;
  width: number;
}

export function imageAt(source: ImageSource, index: number): ImageView {
  const height = source.heights[index];
  const width = source.widths[index];
  const at = source.offsets[index];
  return { pixels: source.images.subarray(at, at + height * width * source.channels), height, width };
}

/** The bytes the first `count` images take in `images`. */
export function imageBytesOf(source: ImageSource, count = source.count): number {
  if (count === 0) return 0;
  const last = count - 1;
  return source.offsets[last] + source.heights[last] * source.widths[last] * source.channels;
}

/** The size every image of the source shares, or undefined when sizes differ (or it is empty). */
export function uniformSize(source: ImageSource): { height: number; width: number } | undefined {
  if (source.count === 0) return undefined;
  const height = source.heights[0];
  const width = source.widths[0];
  for (let i = 1; i < source.count; i++)
    if (source.heights[i] !== height || source.widths[i] !== width) return undefined;
  return { height, width };
}

/** As uniformSize, for code that needs one size (a raw-pixel baseline, stacked masks); `what` names the caller. */
export function requireUniformSize(source: ImageSource, what: string): { height: number; width: number } {
  const size = uniformSize(source);
  if (!size) throw new Error(`${what} needs images of one size; these images keep their own sizes`);
  return size;
}

/** The layout of `count` same-sized images stored back to back (Fashion-MNIST, test images). */
export function uniformImages(flat: {
  images: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: 1 | 3;
}): ImageSource {
  const { images, count, height, width, channels } = flat;
  const frame = height * width * channels;
  if (images.length < count * frame)
    throw new Error(`${images.length} bytes for ${count} images of ${width}x${height}x${channels}`);
  const offsets = new Float64Array(count);
  for (let i = 0; i < count; i++) offsets[i] = i * frame;
  return {
    images,
    count,
    channels,
    offsets,
    heights: new Uint32Array(count).fill(height),
    widths: new Uint32Array(count).fill(width),
  };
}

/**
 * Appends images of any size into one buffer. Give the expected total bytes when known (then
 * nothing is copied); otherwise the buffer doubles as it fills and is trimmed at the end.
 */
export class ImageSourceBuilder {
  private images: Uint8Array;
  private readonly offsets: Float64Array;
  private readonly heights: Uint32Array;
  private readonly widths: Uint32Array;
  private count = 0;
  private bytes = 0;

  constructor(
    private readonly channels: 1 | 3,
    private readonly maxImages: number,
    expectedBytes: number,
  ) {
    this.images = new Uint8Array(expectedBytes);
    this.offsets = new Float64Array(maxImages);
    this.heights = new Uint32Array(maxImages);
    this.widths = new Uint32Array(maxImages);
  }

  get size(): number {
    return this.count;
  }

  add(pixels: Uint8Array, height: number, width: number): void {
    if (this.count >= this.maxImages) throw new Error(`image source is full (${this.maxImages} images)`);
    if (pixels.length !== height * width * this.channels)
      throw new Error(`${pixels.length} bytes for a ${width}x${height}x${this.channels} image`);
    const end = this.bytes + pixels.length;
    if (end > this.images.length) {
      const grown = new Uint8Array(Math.max(end, 2 * this.images.length));
      grown.set(this.images.subarray(0, this.bytes));
      this.images = grown;
    }
    this.images.set(pixels, this.bytes);
    this.offsets[this.count] = this.bytes;
    this.heights[this.count] = height;
    this.widths[this.count] = width;
    this.count++;
    this.bytes = end;
  }

  finish(): ImageSource {
    const n = this.count;
    const full = n === this.maxImages;
    return {
      images: this.bytes === this.images.length ? this.images : this.images.slice(0, this.bytes),
      count: n,
      channels: this.channels,
      offsets: full ? this.offsets : this.offsets.slice(0, n),
      heights: full ? this.heights : this.heights.slice(0, n),
      widths: full ? this.widths : this.widths.slice(0, n),
    };
  }
}
