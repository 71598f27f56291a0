import { decodePng } from '@dinoq/data';
import { CHART_MARGIN, curvePng, curveSvg, niceAxis, type CurveChart } from '../src/bench/curve-plot';

const chart: CurveChart = {
  title: 'k-NN top-1 against training time',
  xLabel: 'training minutes',
  yLabel: 'top-1 (%)',
  width: 400,
  height: 300,
  series: [
    {
      name: 'trained',
      color: '#d62728',
      points: [
        { x: 0, y: 40 },
        { x: 10, y: 60 },
      ],
    },
    {
      name: 'random init',
      color: '#1f77b4',
      dashed: true,
      points: [
        { x: 0, y: 50 },
        { x: 10, y: 50 },
      ],
    },
  ],
};

/** The RGB of pixel (x, y). */
function pixel(png: Buffer, x: number, y: number): [number, number, number] {
  const image = decodePng(png);
  const i = (y * image.width + x) * image.channels;
  return [image.data[i], image.data[i + 1], image.data[i + 2]];
}

describe('curve plot', () => {
  test('ticks are 1, 2 or 5 × 10^k and cover the data', () => {
    expect(niceAxis(0, 10)).toEqual({ min: 0, max: 10, ticks: [0, 2, 4, 6, 8, 10] });
    expect(niceAxis(41.3, 58.9)).toEqual({ min: 40, max: 60, ticks: [40, 45, 50, 55, 60] });
    // One value still gets an axis around it.
    const flat = niceAxis(50, 50);
    expect(flat.min).toBeLessThan(50);
    expect(flat.max).toBeGreaterThan(50);
  });

  test('the PNG draws each series where its values fall', () => {
    const png = curvePng(chart);
    const image = decodePng(png);
    expect([image.width, image.height]).toEqual([400, 300]);
    // Axes: x 0..10, y 40..60. The trained line's midpoint (5, 50) and the baseline at y = 50
    // cross at the middle of the plot area; the trained line's ends are red dots.
    const plotW = 400 - CHART_MARGIN.left - CHART_MARGIN.right;
    const plotH = 300 - CHART_MARGIN.top - CHART_MARGIN.bottom;
    const at = (x: number, y: number) =>
      pixel(
        png,
        Math.round(CHART_MARGIN.left + (x / 10) * plotW),
        Math.round(CHART_MARGIN.top + plotH - ((y - 40) / 20) * plotH),
      );
    const red = at(10, 60);
    expect(red[0]).toBeGreaterThan(180);
    expect(red[1]).toBeLessThan(90);
    const start = at(0, 40);
    expect(start[0]).toBeGreaterThan(180);
    expect(start[2]).toBeLessThan(90);
    // The dashed baseline is blue at its start (the dash pattern starts drawn).
    const blue = at(0.1, 50);
    expect(blue[2]).toBeGreaterThan(150);
    expect(blue[0]).toBeLessThan(100);
    // Far from every line the plot is white.
    expect(at(7, 43)).toEqual([255, 255, 255]);
  });

  test('an empty chart is an error naming it; text is escaped', () => {
    expect(() => curveSvg({ ...chart, series: [] })).toThrow(
      'curve "k-NN top-1 against training time": no points',
    );
    expect(curveSvg({ ...chart, title: 'a < b & c' })).toContain('a &lt; b &amp; c');
  });
});
