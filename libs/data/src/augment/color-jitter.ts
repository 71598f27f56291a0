import { adjustBrightness, adjustContrast, adjustHue, adjustSaturation } from './pixel-ops';
import { uniform, type Rng } from './rng';
import type { PlanarImage } from './wasm/planar-image';

export interface ColorJitterStrength {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** DINO's jitter (spec §8). */
export const DINO_COLOR_JITTER: ColorJitterStrength = {
  brightness: 0.4,
  contrast: 0.4,
  saturation: 0.2,
  hue: 0.1,
};

/**
 * torchvision ColorJitter: draws an order for the four operations, then each factor
 * (brightness/contrast/saturation in [1 − s, 1 + s], hue shift in [−h, h]), then applies them.
 */
export function colorJitter(
  img: PlanarImage,
  rng: Rng,
  strength: ColorJitterStrength = DINO_COLOR_JITTER,
): void {
  const order = [0, 1, 2, 3];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const brightness = uniform(rng, 1 - strength.brightness, 1 + strength.brightness);
  const contrast = uniform(rng, 1 - strength.contrast, 1 + strength.contrast);
  const saturation = uniform(rng, 1 - strength.saturation, 1 + strength.saturation);
  const hue = uniform(rng, -strength.hue, strength.hue);
  for (const op of order) {
    if (op === 0) adjustBrightness(img, brightness);
    else if (op === 1) adjustContrast(img, contrast);
    else if (op === 2) adjustSaturation(img, saturation);
    else adjustHue(img, hue);
  }
}
