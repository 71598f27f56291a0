import { decodePng } from '@dinoq/data';
import { colorize, inferno, maskColour } from '../src/colormap';
import {
  denormalize,
  maskContour,
  renderHeatmapOverlayPng,
  renderHeatmapPng,
  renderImagePng,
  renderMaskOverlayPng,
  renderMaskPng,
  scaleNearest,
  viewScale,
} from '../src/png-render';

const luminance = ([r, g, b]: number[]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;

describe('colormap', () => {
  it('runs from near black to pale yellow with rising lightness', () => {
    expect(inferno(0)).toEqual([0, 0, 4]);
    expect(inferno(1)).toEqual([252, 255, 164]);
    // Middle of the table: matplotlib's inferno(0.5) ≈ (0.736, 0.216, 0.330).
    const mid = inferno(128 / 255);
    expect(mid[0]).toBeCloseTo(188, -1);
    expect(mid[1]).toBeCloseTo(55, -1);
    let previous = -1;
    for (let v = 0; v <= 1; v += 1 / 32) {
      const l = luminance(inferno(v));
      expect(l).toBeGreaterThan(previous);
      previous = l;
    }
    expect(inferno(-3)).toEqual(inferno(0));
    expect(inferno(Number.NaN)).toEqual(inferno(0));
  });

  it('scales each map by its own range; a constant map is black', () => {
    const rgb = colorize([2, 4, 6]);
    expect(Array.from(rgb.subarray(0, 3))).toEqual(inferno(0));
    expect(Array.from(rgb.subarray(6, 9))).toEqual(inferno(1));
    expect(Array.from(rgb.subarray(3, 6))).toEqual(inferno(128 / 255));
    expect(Array.from(colorize([5, 5]))).toEqual([...inferno(0), ...inferno(0)]);
    expect(maskColour(0)).not.toEqual(maskColour(1));
    expect(maskColour(10)).toEqual(maskColour(0));
  });
});

describe('PNG rendering', () => {
  const side = 8;
  const scale = viewScale(side);
  const image = {
    data: Uint8Array.from({ length: side * side * 3 }, (_, i) => (i * 7) % 256),
    width: side,
    height: side,
  };
  const heat = Float32Array.from({ length: side * side }, (_, i) => i / 10);
  const mask = Uint8Array.from({ length: side * side }, (_, i) => (i % side < 4 ? 1 : 0));

  it('enlarges to at least 128 px by an integer factor', () => {
    expect(viewScale(32)).toBe(4);
    expect(viewScale(48)).toBe(3);
    expect(viewScale(200)).toBe(1);
    expect(scale).toBe(16);
    const big = scaleNearest(Uint8Array.from([1, 2, 3, 4]), 2, 2, 1, 2);
    expect(Array.from(big)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
  });

  it('writes RGB heatmaps, gray binary masks and RGB overlays of the right size', () => {
    const cases: [Uint8Array, number][] = [
      [renderImagePng(image, scale), 3],
      [renderHeatmapPng(heat, side, side, scale), 3],
      [renderMaskPng(mask, side, side, scale), 1],
      [renderMaskOverlayPng(image, mask, scale, { colour: [255, 0, 0] }), 3],
      [renderHeatmapOverlayPng(image, heat, scale, { outline: mask }), 3],
    ];
    for (const [png, channels] of cases) {
      const decoded = decodePng(png);
      expect(decoded).toMatchObject({ width: 128, height: 128, channels });
    }
    const maskPixels = decodePng(cases[2][0]).data;
    expect(new Set(maskPixels)).toEqual(new Set([0, 255]));
    // Column 3 of the small mask is on, column 4 off; each becomes 16 pixels wide.
    expect(maskPixels[3 * 16]).toBe(255);
    expect(maskPixels[4 * 16]).toBe(0);
    const heatPixels = decodePng(cases[1][0]).data;
    expect(Array.from(heatPixels.subarray(0, 3))).toEqual(inferno(0));
    expect(Array.from(heatPixels.subarray(heatPixels.length - 3))).toEqual(inferno(1));
    expect(decodePng(renderImagePng(image, 1)).data).toEqual(image.data);
  });

  it('blends the mask colour at alpha 0.5 inside, draws the outline, leaves the rest untouched', () => {
    const plain = { data: new Uint8Array(side * side * 3).fill(100), width: side, height: side };
    const out = decodePng(renderMaskOverlayPng(plain, mask, 2, { colour: [200, 0, 50] })).data;
    const w = side * 2;
    const px = (x: number, y: number) => Array.from(out.subarray((y * w + x) * 3, (y * w + x) * 3 + 3));
    expect(px(2, 4)).toEqual([150, 50, 75]);
    expect(px(7, 4)).toEqual([200, 0, 50]);
    expect(px(8, 4)).toEqual([100, 100, 100]);
    const noEdge = decodePng(
      renderMaskOverlayPng(plain, mask, 2, { colour: [200, 0, 50], contour: false }),
    ).data;
    expect(Array.from(noEdge.subarray((4 * w + 7) * 3, (4 * w + 7) * 3 + 3))).toEqual([150, 50, 75]);
  });

  it('outlines a mask without marking the image border', () => {
    const square = Uint8Array.from({ length: 25 }, (_, i) =>
      i % 5 >= 1 && i % 5 <= 3 && i >= 5 && i < 20 ? 1 : 0,
    );
    const edge = maskContour(square, 5, 5);
    expect(edge[2 * 5 + 2]).toBe(0);
    expect(edge[1 * 5 + 1]).toBe(1);
    expect(edge.reduce((a, b) => a + b, 0)).toBe(8);
    expect(Array.from(maskContour(new Uint8Array(4).fill(1), 2, 2))).toEqual([0, 0, 0, 0]);
  });

  it('undoes the normalisation of evalTransform', () => {
    const mean = [0.485, 0.456, 0.406] as const;
    const std = [0.229, 0.224, 0.225] as const;
    const rgb = [0, 128, 255];
    const normalised = Float32Array.from(rgb, (v, c) => (v / 255 - mean[c]) / std[c]);
    expect(Array.from(denormalize(normalised, 1, 1, mean, std).data)).toEqual(rgb);
    expect(Array.from(denormalize(Float32Array.from([-100, 100, 0]), 1, 1, mean, std).data)).toEqual([
      0, 255, 104,
    ]);
  });
});
