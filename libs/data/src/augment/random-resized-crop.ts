import { uniform, type Rng } from './rng';

/** A crop in source pixels. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

const LOG_RATIO: [number, number] = [Math.log(3 / 4), Math.log(4 / 3)];

/**
 * RandomResizedCrop's box, as torchvision draws it: area fraction uniform in `scale`,
 * aspect ratio log-uniform in [3/4, 4/3], 10 attempts, then a centre crop clamped to the
 * ratio range.
 */
export function sampleCropBox(
  rng: Rng,
  height: number,
  width: number,
  scale: readonly [number, number],
): CropBox {
  const area = height * width;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * uniform(rng, scale[0], scale[1]);
    const aspect = Math.exp(uniform(rng, LOG_RATIO[0], LOG_RATIO[1]));
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = Math.floor(rng() * (height - h + 1));
      const left = Math.floor(rng() * (width - w + 1));
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < 3 / 4) h = Math.round(w / (3 / 4));
  else if (inRatio > 4 / 3) w = Math.round(h * (4 / 3));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}
