/**
 * A perceptual colormap for attention heatmaps: "inferno" (the colormap of the reference video
 * visualisation, spec §13), approximated by nine anchor colours sampled from matplotlib's
 * 256-entry table at entries 0, 32, …, 224, 255 and linearly interpolated in between. Its
 * lightness rises monotonically from black through purple and orange to pale yellow, so a
 * heatmap reads correctly in grayscale too.
 */
const INFERNO_ANCHORS: readonly (readonly [number, number, number, number])[] = [
  // [position in [0, 1], r, g, b]
  [0 / 255, 0.001462, 0.000466, 0.013866],
  [32 / 255, 0.129285, 0.047293, 0.290788],
  [64 / 255, 0.3415, 0.062325, 0.429425],
  [96 / 255, 0.54092, 0.134729, 0.415123],
  [128 / 255, 0.735683, 0.215906, 0.330245],
  [160 / 255, 0.894305, 0.353399, 0.193584],
  [192 / 255, 0.978422, 0.557937, 0.034931],
  [224 / 255, 0.974638, 0.797692, 0.206332],
  [255 / 255, 0.988362, 0.998364, 0.644924],
];

/** 256-entry RGB lookup table, built once. */
const INFERNO_LUT: Uint8Array = (() => {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const v = i / 255;
    let k = 0;
    while (k < INFERNO_ANCHORS.length - 2 && v > INFERNO_ANCHORS[k + 1][0]) k++;
    const [p0, ...c0] = INFERNO_ANCHORS[k];
    const [p1, ...c1] = INFERNO_ANCHORS[k + 1];
    const f = (v - p0) / (p1 - p0);
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(255 * (c0[c] + f * (c1[c] - c0[c])));
  }
  return lut;
})();

/** The colour of a value in [0, 1] (clamped; NaN maps to 0). */
export function inferno(value: number): [number, number, number] {
  const v = Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
  const i = Math.round(v * 255) * 3;
  return [INFERNO_LUT[i], INFERNO_LUT[i + 1], INFERNO_LUT[i + 2]];
}

/**
 * Interleaved RGB of a map, each value scaled by the map's own min and max first (as
 * matplotlib's imsave does), so every head uses the full colour range; a constant map is black.
 */
export function colorize(values: ArrayLike<number>): Uint8Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i] < lo) lo = values[i];
    if (values[i] > hi) hi = values[i];
  }
  const range = hi > lo ? hi - lo : 1;
  const out = new Uint8Array(values.length * 3);
  for (let i = 0; i < values.length; i++) {
    const j = Math.round(((values[i] - lo) / range) * 255) * 3;
    out[i * 3] = INFERNO_LUT[j];
    out[i * 3 + 1] = INFERNO_LUT[j + 1];
    out[i * 3 + 2] = INFERNO_LUT[j + 2];
  }
  return out;
}

/** Distinct saturated colours for mask overlays, one per head (cycled beyond ten). */
const MASK_COLOURS: readonly (readonly [number, number, number])[] = [
  [255, 64, 64],
  [64, 160, 255],
  [64, 220, 96],
  [255, 200, 0],
  [200, 80, 255],
  [0, 220, 220],
  [255, 128, 0],
  [255, 80, 180],
  [160, 220, 0],
  [120, 120, 255],
];

export function maskColour(index: number): [number, number, number] {
  const c = MASK_COLOURS[((index % MASK_COLOURS.length) + MASK_COLOURS.length) % MASK_COLOURS.length];
  return [c[0], c[1], c[2]];
}
