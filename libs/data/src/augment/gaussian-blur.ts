import { kernels, type PlanarImage } from './wasm/planar-image';

/**
 * PIL's GaussianBlur, as the reference applies it: three passes of an extended box filter
 * (Gwosdek et al., "Theoretical foundations of Gaussian convolution by extended box filtering",
 * 2011) in each direction, whose variance matches the Gaussian's. A pass with float radius
 * rf = r + a (r whole) gives the 2r + 1 pixels around each one the weight 1 / (2rf + 1) and the
 * next pixel on each side the rest; pixels past the edge repeat the border one (PIL's
 * ImagingBoxBlur / ImagingGaussianBlur).
 *
 * Unlike PIL, which works on 8-bit images with 24-bit fixed-point weights and rounds each pass to
 * 8 bits, this works in float32 with exact weights and no rounding between passes.
 */

const PASSES = 3;

/** Box radius of each pass for a Gaussian of standard deviation `sigma` (PIL's _gaussian_blur_radius). */
export function boxBlurRadius(sigma: number, passes = PASSES): number {
  const sigma2 = (sigma * sigma) / passes;
  const boxLength = Math.sqrt(12 * sigma2 + 1);
  const l = Math.floor((boxLength - 1) / 2);
  const a = ((2 * l + 1) * (l * (l + 1) - 3 * sigma2)) / (6 * (sigma2 - (l + 1) * (l + 1)));
  return l + a;
}

/**
 * Blurs the image in place. Each pass costs O(r) per pixel for box radius r, which is at most 1
 * for DINO's σ ≤ 2 (r ≥ 2 needs σ ≥ 2.45), so direct sums beat running ones.
 */
export function gaussianBlur(img: PlanarImage, sigma: number): void {
  if (!(sigma > 0)) throw new Error(`gaussianBlur: sigma must be positive, got ${sigma}`);
  const radius = boxBlurRadius(sigma);
  const r = Math.floor(radius);
  const ww = 1 / (2 * radius + 1);
  const fw = (1 - (2 * r + 1) * ww) / 2;
  const taps = 2 * r + 3;
  const [line, offsets] = img.scratch((img.stride + taps + 3) * 4, taps * 4);
  const k = kernels();
  for (let pass = 0; pass < PASSES; pass++)
    k.boxRowsH(img.ptr, img.height, img.width, img.stride, r, ww, fw, line, offsets);
  for (let pass = 0; pass < PASSES; pass++) {
    k.boxRowsV(img.ptr, img.spare, img.height, img.stride, r, ww, fw, offsets);
    img.swap();
  }
}
