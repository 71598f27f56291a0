import { useState } from 'preact/hooks';
import { get, post } from '../api';
import type { DatasetSummary, EvaluationView, Preset, RunList, RunStatus, RunSummary } from '../api-types';
import { ErrorBox } from '../errors';
import { num } from '../format';
import { useLive, useResource, useThrottled } from '../hooks';
import { RunActions } from '../run-actions';
import { compareHref, runHref } from '../router';
import { newestKnn } from '../series';

const STATUSES: RunStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const PAGE_SIZE = 50;

/** What a training job's progress events say about its run between two record updates. */
interface LiveProgress {
  step: number;
  loss: number;
  imagesPerSecond: number;
}

export function RunsPage() {
  const [status, setStatus] = useState<RunStatus | ''>('');
  const [selected, setSelected] = useState<string[]>([]);
  const [live, setLive] = useState<Record<string, LiveProgress>>({});
  const runs = useResource(
    () => get<RunList>(`/runs?order=desc&limit=${PAGE_SIZE}${status ? `&status=${status}` : ''}`),
    [status],
  );
  const refetch = useThrottled(() => {
    runs.reload();
    setLive({});
  }, 300);
  const [knnVersion, setKnnVersion] = useState(0);
  useLive({
    onHello: refetch,
    onJob: (event) => {
      if (event.event === 'progress' && event.runId && typeof event.progress?.step === 'number') {
        const { step, loss, imagesPerSecond } = event.progress as unknown as LiveProgress;
        setLive((current) => ({ ...current, [event.runId as string]: { step, loss, imagesPerSecond } }));
      } else if (event.event !== 'progress') {
        refetch();
        if (event.name === 'evaluate' && event.event === 'completed') setKnnVersion((v) => v + 1);
      }
    },
  });
  const toggle = (runId: string) =>
    setSelected((current) =>
      current.includes(runId) ? current.filter((id) => id !== runId) : [...current, runId],
    );

  return (
    <section>
      <h2>Runs</h2>
      <StartRun onStarted={runs.reload} />
      <div class="toolbar">
        <label>
          Status{' '}
          <select
            name="status"
            value={status}
            onChange={(e) => setStatus((e.target as HTMLSelectElement).value as RunStatus | '')}
          >
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <a
          class={`button${selected.length < 2 ? ' disabled' : ''}`}
          href={selected.length >= 2 ? compareHref(selected) : undefined}
        >
          Compare {selected.length} runs
        </a>
        {runs.data && <span class="muted">{runs.data.total} runs</span>}
      </div>
      <ErrorBox error={runs.error} />
      <table class="runs">
        <thead>
          <tr>
            <th />
            <th>run</th>
            <th>status</th>
            <th>progress</th>
            <th>loss</th>
            <th>img/s</th>
            <th>backend / device</th>
            <th>newest k-NN</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(runs.data?.runs ?? []).map((run) => (
            <RunRow
              key={run.runId}
              run={run}
              live={live[run.runId]}
              selected={selected.includes(run.runId)}
              onToggle={() => toggle(run.runId)}
              knnVersion={knnVersion}
              onChanged={runs.reload}
            />
          ))}
        </tbody>
      </table>
    </section>
  );
}

function RunRow(props: {
  run: RunSummary;
  live?: LiveProgress;
  selected: boolean;
  knnVersion: number;
  onToggle(): void;
  onChanged(): void;
}) {
  const { run, live } = props;
  const step = Math.max(run.progress.step, live ? live.step + 1 : 0);
  return (
    <tr data-run={run.runId} data-status={run.status}>
      <td>
        <input
          type="checkbox"
          aria-label={`select ${run.runId}`}
          checked={props.selected}
          onChange={props.onToggle}
        />
      </td>
      <td>
        <a href={runHref(run.runId)}>{run.runId}</a>
        <div class="muted">{run.dataset}</div>
      </td>
      <td>
        <span class={`status ${run.status}`}>{run.status}</span>
        {run.cancelRequested && run.status === 'running' && <span class="muted"> (cancelling)</span>}
        {run.error && (
          <div class="error-text" title={run.error}>
            {run.error.slice(0, 80)}
          </div>
        )}
      </td>
      <td class="progress-cell">
        <progress max={run.progress.totalSteps} value={Math.min(step, run.progress.totalSteps)} />
        <span class="step">
          {Math.min(step, run.progress.totalSteps)} / {run.progress.totalSteps}
        </span>
        <div class="muted">
          shard {Math.min(run.progress.shard + 1, run.progress.numShards)} / {run.progress.numShards}
        </div>
      </td>
      <td>{num(live?.loss ?? run.loss, 4)}</td>
      <td>{num(live?.imagesPerSecond ?? run.imagesPerSecond)}</td>
      <td>
        {run.backend ?? '–'} / {run.device}
      </td>
      <td>
        <NewestKnn runId={run.runId} version={props.knnVersion} />
      </td>
      <td>
        <RunActions run={run} onDone={props.onChanged} />
      </td>
    </tr>
  );
}

function NewestKnn(props: { runId: string; version: number }) {
  const evaluations = useResource(
    () => get<EvaluationView[]>(`/runs/${encodeURIComponent(props.runId)}/evaluations`),
    [props.runId, props.version],
  );
  const newest = evaluations.data ? newestKnn(evaluations.data) : null;
  return newest ? (
    <span title={`k = ${newest.k} at step ${newest.step}`}>
      {num(newest.top1)} % <span class="muted">@{newest.step}</span>
    </span>
  ) : (
    <span class="muted">–</span>
  );
}

/** POST /runs from a preset plus JSON overrides; the API validates and names every problem. */
function StartRun(props: { onStarted(): void }) {
  const datasets = useResource(() => get<DatasetSummary[]>('/datasets'), []);
  const presets = useResource(() => get<Preset[]>('/presets'), []);
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [started, setStarted] = useState<string | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    setError(null);
    setStarted(null);
    let config: Record<string, unknown> | undefined;
    const overrides = String(form.get('config') ?? '').trim();
    try {
      config = overrides ? (JSON.parse(overrides) as Record<string, unknown>) : undefined;
    } catch (failure) {
      setError(new Error(`overrides: not JSON (${(failure as Error).message})`));
      return;
    }
    const runId = String(form.get('runId') ?? '').trim();
    try {
      const run = await post<{ runId: string }>('/runs', {
        ...(runId ? { runId } : {}),
        dataset: form.get('dataset'),
        preset: form.get('preset') || undefined,
        device: form.get('device'),
        ...(config ? { config } : {}),
      });
      setStarted(run.runId);
      props.onStarted();
    } catch (failure) {
      setError(failure);
    }
  };
  if (!open) return <button onClick={() => setOpen(true)}>Start a run…</button>;
  return (
    <form class="start-run" onSubmit={submit}>
      <label>
        Dataset
        <select name="dataset" required>
          {(datasets.data ?? []).map((d) => (
            <option key={d.name} value={d.name}>
              {d.name} ({d.splits.train?.count ?? 0} train images)
            </option>
          ))}
        </select>
      </label>
      <label>
        Preset
        <select name="preset">
          <option value="">defaults</option>
          {(presets.data ?? []).map((p) => (
            <option key={p.name} value={p.name} selected={p.name === 'fmnist-tiny'}>
              {p.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Run id <input name="runId" placeholder="generated when empty" />
      </label>
      <label>
        Device
        <select name="device">
          <option value="any">any</option>
          <option value="cpu">cpu</option>
          <option value="gpu">gpu</option>
        </select>
      </label>
      <label class="wide">
        Overrides (JSON, merged over the preset)
        <textarea name="config" rows={4} placeholder='{"train": {"epochs": 2}}' />
      </label>
      <div class="wide">
        <button type="submit">Start</button>{' '}
        <button type="button" onClick={() => setOpen(false)}>
          Close
        </button>
        {started && (
          <span class="ok">
            {' '}
            Started <a href={runHref(started)}>{started}</a>
          </span>
        )}
      </div>
      <ErrorBox error={error} />
    </form>
  );
}
