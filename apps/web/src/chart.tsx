import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { num } from './format';
import type { Columns } from './series';

export interface SeriesStyle {
  label: string;
  color: string;
  /** A reference line (ln K) rather than data. */
  dashed?: boolean;
}

interface ChartProps {
  title: string;
  series: SeriesStyle[];
  data: Columns;
  xLabel?: string;
  height?: number;
  /** Points as well as lines: for sparse data such as k-NN evaluations. */
  points?: boolean;
  /** For tests and links: `data-chart` on the chart's element. */
  name: string;
}

export const PALETTE = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#9333ea',
  '#ea580c',
  '#0891b2',
  '#4b5563',
  '#db2777',
];

function options(props: ChartProps, width: number): uPlot.Options {
  return {
    width,
    height: props.height ?? 200,
    title: props.title,
    scales: { x: { time: false } },
    // Learning rates and the like are far below 1: uPlot's default ticks would round them to 0.
    axes: [
      { label: props.xLabel ?? 'step' },
      { values: (_plot, ticks) => ticks.map((tick) => num(tick)), size: 60 },
    ],
    series: [
      { label: props.xLabel ?? 'step' },
      ...props.series.map((style) => ({
        label: style.label,
        stroke: style.color,
        width: style.dashed ? 1 : 1.5,
        dash: style.dashed ? [6, 4] : undefined,
        spanGaps: true,
        points: { show: props.points ?? false },
      })),
    ],
    legend: { live: true },
  };
}

/**
 * A uPlot chart. New data is drawn into the same plot (live updates do not rebuild it); a change
 * of series or width rebuilds it.
 */
export function Chart(props: ChartProps) {
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = props.series.map((style) => style.label).join('\u0000');

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const build = () => {
      plot.current?.destroy();
      plot.current = new uPlot(options(props, Math.max(element.clientWidth, 240)), props.data, element);
    };
    build();
    let width = element.clientWidth;
    const observer = new ResizeObserver(() => {
      if (Math.abs(element.clientWidth - width) < 2) return;
      width = element.clientWidth;
      plot.current?.setSize({ width: Math.max(width, 240), height: props.height ?? 200 });
    });
    observer.observe(element);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shape, props.title]);

  useEffect(() => {
    plot.current?.setData(props.data);
  }, [props.data]);

  return (
    <div class="chart" data-chart={props.name} data-points={props.data[0].length}>
      <div ref={container} />
    </div>
  );
}
