import { imageAt, uniformSize, type ImageSource } from '../images';
import { resizeCropBicubic } from './bicubic-resize';
import { checkIndex } from './multi-crop';
import { normalizeInto, toRgbFloat } from './pixel-ops';
import type { CropBox } from './random-resized-crop';

/** The reference's evaluation crop: Resize(256) then CenterCrop(224) keeps 224/256 of the shorter side. */
export const REFERENCE_EVAL_CROP_FRACTION = 224 / 256;

/**
 * The crop fraction evaluation uses for a set of images. Images that keep their own sizes (photos)
 * get the reference's Resize + CenterCrop; a fixed-size dataset was framed once for all (Fashion-
 * MNIST's centred objects, an import resized to one size), so its whole centred square is kept,
 * as the project's evaluation figures were measured.
 */
export function evalCropFraction(images: ImageSource): number {
  return uniformSize(images) ? 1 : REFERENCE_EVAL_CROP_FRACTION;
}

/**
 * The centred square of side `cropFraction` × the shorter side: resizing the shorter side to
 * size / cropFraction and centre-cropping `size` (torchvision Resize + CenterCrop) reads this box.
 */
export function evalCropBox(height: number, width: number, cropFraction: number): CropBox {
  if (!(cropFraction > 0 && cropFraction <= 1))
    throw new Error(`eval crop fraction must be in (0, 1], got ${cropFraction}`);
  const side = Math.max(1, Math.round(Math.min(height, width) * cropFraction));
  return {
    top: Math.floor((height - side) / 2),
    left: Math.floor((width - side) / 2),
    height: side,
    width: side,
  };
}

/**
 * The k-NN / linear-probe preprocessing (spec §11) without augmentation: each image's centred
 * square of `cropFraction` × its shorter side (evalCropBox), bicubic-resized to `size` in one
 * pass, normalised. With the default fraction 1 a square image is resized whole.
 * Returns NHWC [indices.length, size, size, 3].
 */
export function evalTransform(
  images: ImageSource,
  indices: readonly number[],
  size: number,
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
  cropFraction = 1,
): Float32Array {
  let src = new Float32Array(0);
  const resized = new Float32Array(size * size * 3);
  const out = new Float32Array(indices.length * size * size * 3);
  for (const [b, index] of indices.entries()) {
    checkIndex(images, index);
    const { pixels, height, width } = imageAt(images, index);
    const floats = height * width * 3;
    if (src.length < floats) src = new Float32Array(floats);
    toRgbFloat(pixels, images.channels, src.subarray(0, floats));
    resizeCropBicubic(src, width, evalCropBox(height, width, cropFraction), size, size, resized);
    normalizeInto(resized, mean, std, out, b * resized.length);
  }
  return out;
}
