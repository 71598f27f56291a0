import { Resvg } from '@resvg/resvg-js';

/*
 * A line chart of a benchmark's curve (k-NN against training time), written as a PNG beside the
 * printed figures. The chart is a handful of SVG elements written here; resvg rasterises it (text
 * in whatever sans-serif font the system has; without one the lines and axes still render).
 */

export interface CurvePoint {
  x: number;
  y: number;
}

export interface CurveSeries {
  name: string;
  points: readonly CurvePoint[];
  color: string;
  /** Drawn dashed, for reference lines such as baselines. */
  dashed?: boolean;
}

export interface CurveChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly CurveSeries[];
  width?: number;
  height?: number;
}

/** The plot area's margins in pixels: left for the y ticks and label, bottom for the x ones. */
export const CHART_MARGIN = { left: 64, right: 16, top: 36, bottom: 48 } as const;

interface Axis {
  min: number;
  max: number;
  ticks: number[];
}

/** Ticks at 1, 2 or 5 × 10^k covering [min, max], about `count` of them. */
export function niceAxis(min: number, max: number, count = 6): Axis {
  if (!(max > min)) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.05 : 1;
    return niceAxis(min - pad, max + pad, count);
  }
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return { min: lo, max: hi, ticks };
}

const escapeXml = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const label = (v: number) => String(Number(v.toPrecision(6)));

/** The chart as an SVG document. Throws when no series has a point. */
export function curveSvg(chart: CurveChart): string {
  const width = chart.width ?? 800;
  const height = chart.height ?? 480;
  const points = chart.series.flatMap((s) => s.points);
  if (points.length === 0) throw new Error(`curve "${chart.title}": no points to plot`);
  const xs = niceAxis(Math.min(...points.map((p) => p.x)), Math.max(...points.map((p) => p.x)));
  const ys = niceAxis(Math.min(...points.map((p) => p.y)), Math.max(...points.map((p) => p.y)));
  const m = CHART_MARGIN;
  const plotW = width - m.left - m.right;
  const plotH = height - m.top - m.bottom;
  const px = (x: number) => m.left + ((x - xs.min) / (xs.max - xs.min)) * plotW;
  const py = (y: number) => m.top + plotH - ((y - ys.min) / (ys.max - ys.min)) * plotH;
  const text = (x: number, y: number, content: string, attrs = '') =>
    `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(content)}</text>`;

  const grid = [
    ...ys.ticks.map(
      (t) =>
        `<line x1="${m.left}" x2="${m.left + plotW}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#e4e4e4"/>` +
        text(m.left - 6, py(t) + 4, label(t), 'text-anchor="end"'),
    ),
    ...xs.ticks.map(
      (t) =>
        `<line x1="${px(t).toFixed(1)}" x2="${px(t).toFixed(1)}" y1="${m.top}" y2="${m.top + plotH}" stroke="#e4e4e4"/>` +
        text(px(t), m.top + plotH + 16, label(t), 'text-anchor="middle"'),
    ),
  ];
  const lines = chart.series.map((s) => {
    const path = s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    const dash = s.dashed ? ' stroke-dasharray="8 5"' : '';
    const marks = s.dashed
      ? ''
      : s.points
          .map(
            (p) => `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${s.color}"/>`,
          )
          .join('');
    return `<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>${marks}`;
  });
  const legendWidth = 52 + 7 * Math.max(...chart.series.map((s) => s.name.length));
  const legendBox = `<rect x="${m.left + 6}" y="${m.top + 4}" width="${legendWidth}" height="${chart.series.length * 18 + 6}" fill="#ffffff" fill-opacity="0.9" stroke="#ccc"/>`;
  const legend = chart.series.map(
    (s, i) =>
      `<line x1="${m.left + 12}" x2="${m.left + 36}" y1="${m.top + 14 + i * 18}" y2="${m.top + 14 + i * 18}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="8 5"' : ''}/>` +
      text(m.left + 42, m.top + 18 + i * 18, s.name),
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12" fill="#222">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...grid,
    `<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`,
    ...lines,
    legendBox,
    ...legend,
    text(width / 2, 22, chart.title, 'text-anchor="middle" font-size="15"'),
    text(m.left + plotW / 2, height - 10, chart.xLabel, 'text-anchor="middle"'),
    text(
      16,
      m.top + plotH / 2,
      chart.yLabel,
      `text-anchor="middle" transform="rotate(-90 16 ${m.top + plotH / 2})"`,
    ),
    '</svg>',
  ].join('\n');
}

/** The chart as PNG bytes. */
export function curvePng(chart: CurveChart): Buffer {
  const svg = new Resvg(curveSvg(chart), {
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
    background: '#ffffff',
  });
  return svg.render().asPng();
}
