import { useState } from 'preact/hooks';
import { get } from '../api';
import type { RunList, StoredMetricsLine } from '../api-types';
import { Chart, PALETTE } from '../chart';
import { ErrorBox } from '../errors';
import { useLive, useResource, useThrottled } from '../hooks';
import { compareHref, runHref } from '../router';
import { alignRuns, type MetricName } from '../series';

const METRICS: MetricName[] = ['loss', 'teacherEntropy', 'klTeacherStudent', 'lr', 'imagesPerSecond'];

/** Two or more runs' curves of one metric on one chart, against step. */
export function ComparePage(props: { runIds: string[] }) {
  const [metric, setMetric] = useState<MetricName>('loss');
  const key = props.runIds.join(',');
  const all = useResource(() => get<RunList>('/runs?order=desc&limit=100'), []);
  const lines = useResource(
    () =>
      Promise.all(
        props.runIds.map((runId) => get<StoredMetricsLine[]>(`/runs/${encodeURIComponent(runId)}/metrics`)),
      ),
    [key],
  );
  const refetch = useThrottled(lines.reload, 1000);
  useLive({
    onHello: lines.reload,
    onJob: (event) => {
      if (event.event === 'completed' && event.runId && props.runIds.includes(event.runId)) refetch();
    },
  });
  const toggle = (runId: string) => {
    const next = props.runIds.includes(runId)
      ? props.runIds.filter((id) => id !== runId)
      : [...props.runIds, runId];
    location.hash = compareHref(next);
  };
  return (
    <section class="compare">
      <h2>Compare runs</h2>
      <div class="toolbar">
        <label>
          Metric{' '}
          <select
            name="metric"
            value={metric}
            onChange={(e) => setMetric((e.target as HTMLSelectElement).value as MetricName)}
          >
            {METRICS.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorBox error={lines.error ?? all.error} />
      {lines.data && props.runIds.length > 0 && (
        <Chart
          name="compare"
          title={`${metric} against step`}
          height={320}
          data={alignRuns(lines.data, metric)}
          series={props.runIds.map((runId, index) => ({
            label: runId,
            color: PALETTE[index % PALETTE.length],
          }))}
        />
      )}
      <ul class="run-picker">
        {(all.data?.runs ?? []).map((run) => (
          <li key={run.runId}>
            <label>
              <input
                type="checkbox"
                checked={props.runIds.includes(run.runId)}
                onChange={() => toggle(run.runId)}
              />{' '}
              {run.runId}
            </label>{' '}
            <a href={runHref(run.runId)} class="muted">
              open
            </a>
          </li>
        ))}
      </ul>
    </section>
  );
}
