import { resizeCropBicubic } from './bicubic-resize';
import { checkIndex, type ImageSource } from './multi-crop';
import { normalizeInto, toRgbFloat } from './pixel-ops';

/**
 * The k-NN / linear-probe preprocessing (spec §11) without augmentation: the largest centred
 * square, bicubic-resized to `size`, normalised. For square images this is a plain resize.
 * Returns NHWC [indices.length, size, size, 3].
 */
export function evalTransform(
  images: ImageSource,
  indices: readonly number[],
  size: number,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
): Float32Array {
  const { height, width, channels } = images;
  const frame = height * width * channels;
  const side = Math.min(height, width);
  const box = {
    top: Math.floor((height - side) / 2),
    left: Math.floor((width - side) / 2),
    height: side,
    width: side,
  };
  const src = new Float32Array(height * width * 3);
  const resized = new Float32Array(size * size * 3);
  const out = new Float32Array(indices.length * size * size * 3);
  for (const [b, index] of indices.entries()) {
    checkIndex(images, index);
    toRgbFloat(images.images.subarray(index * frame, (index + 1) * frame), channels, src);
    resizeCropBicubic(src, width, box, size, size, resized);
    normalizeInto(resized, mean, std, out, b * resized.length);
  }
  return out;
}
