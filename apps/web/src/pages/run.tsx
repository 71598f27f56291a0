import { useMemo, useRef, useState } from 'preact/hooks';
import { get } from '../api';
import type { AttentionView, EvaluationView, RunArtifacts, RunView, StoredMetricsLine } from '../api-types';
import { Chart, PALETTE } from '../chart';
import { ErrorBox } from '../errors';
import { bytes, when } from '../format';
import { useLive, useResource, useThrottled } from '../hooks';
import { RunActions } from '../run-actions';
import { attentionHref } from '../router';
import {
  knnColumns,
  liveMetricsLine,
  maxEntropy,
  mergeMetrics,
  metricColumns,
  nextStep,
  withConstant,
  type MetricName,
} from '../series';

/** The training curves, one chart each: what DINO practitioners watch to catch collapse early. */
const CURVES: { name: MetricName; title: string }[] = [
  { name: 'loss', title: 'loss' },
  { name: 'teacherEntropy', title: 'teacher entropy (nats)' },
  { name: 'klTeacherStudent', title: 'KL(teacher ‖ student)' },
  { name: 'lr', title: 'learning rate' },
  { name: 'weightDecay', title: 'weight decay' },
  { name: 'momentum', title: 'teacher momentum' },
  { name: 'teacherTemp', title: 'teacher temperature' },
  { name: 'imagesPerSecond', title: 'images / s' },
  { name: 'dataWaitMs', title: 'data wait (ms)' },
];

const runPath = (runId: string, rest = '') => `/runs/${encodeURIComponent(runId)}${rest}`;

/**
 * Stored metrics lines, fetched whole on load and after a reconnect, then from the next step on
 * after each commit; live lines from progress events fill the steps in between.
 */
function useMetrics(runId: string) {
  const [stored, setStored] = useState<StoredMetricsLine[]>([]);
  const [live, setLive] = useState<StoredMetricsLine[]>([]);
  const storedRef = useRef(stored);
  storedRef.current = stored;
  const full = useResource(async () => {
    const lines = await get<StoredMetricsLine[]>(runPath(runId, '/metrics'));
    setStored(lines);
    setLive([]);
    return lines;
  }, [runId]);
  const more = async () => {
    const from = nextStep(storedRef.current);
    const lines = await get<StoredMetricsLine[]>(runPath(runId, `/metrics?fromStep=${from}`));
    setStored((current) => mergeMetrics(current, lines));
    const last = lines.length > 0 ? lines[lines.length - 1].step : from - 1;
    // Stored lines replace the live ones of the same steps.
    setLive((current) => current.filter((line) => line.step > last));
  };
  const lines = useMemo(() => mergeMetrics(stored, live), [stored, live]);
  return {
    lines,
    error: full.error,
    reloadAll: full.reload,
    fetchNew: () => void more().catch(() => full.reload()),
    addLive: (line: StoredMetricsLine) => setLive((current) => [...current, line]),
  };
}

export function RunPage(props: { runId: string }) {
  const { runId } = props;
  const run = useResource(() => get<RunView>(runPath(runId)), [runId]);
  const artifacts = useResource(() => get<RunArtifacts>(runPath(runId, '/artifacts')), [runId]);
  const evaluations = useResource(() => get<EvaluationView[]>(runPath(runId, '/evaluations')), [runId]);
  const exports = useResource(() => get<AttentionView[]>(runPath(runId, '/attention')), [runId]);
  const metrics = useMetrics(runId);
  const [liveStep, setLiveStep] = useState<number | null>(null);

  const refetchRun = useThrottled(() => {
    run.reload();
    artifacts.reload();
    metrics.fetchNew();
  }, 300);
  const refetchOutputs = useThrottled(() => {
    evaluations.reload();
    exports.reload();
    artifacts.reload();
  }, 300);
  useLive({
    onHello: () => {
      run.reload();
      artifacts.reload();
      evaluations.reload();
      exports.reload();
      metrics.reloadAll();
    },
    onJob: (event) => {
      if (event.runId !== runId) return;
      const line = liveMetricsLine(event, runId);
      if (line) {
        metrics.addLive(line);
        setLiveStep(line.step + 1);
      } else if (event.name === 'evaluate' || event.name === 'attention') refetchOutputs();
      else if (event.event !== 'progress') refetchRun();
    },
  });

  if (run.error) return <ErrorBox error={run.error} />;
  const view = run.data;
  if (!view) return <p class="muted">Loading {runId}…</p>;
  const outDim = Number((view.config.head as { outDim?: number } | undefined)?.outDim);
  const step = Math.max(view.progress.step, liveStep ?? 0);
  return (
    <section class="run" data-run={runId}>
      <h2>
        {runId} <span class={`status ${view.status}`}>{view.status}</span>
      </h2>
      <div class="summary">
        <span class="step">
          step {Math.min(step, view.progress.totalSteps)} / {view.progress.totalSteps}
        </span>
        <span>
          epoch {view.progress.epoch} / {view.progress.epochs}
        </span>
        {view.parallel.rounds && view.parallel.round ? (
          <span>
            round {view.parallel.round.index + 1}: {view.parallel.round.slicesDone.length} /{' '}
            {view.parallel.round.slices} slices done
          </span>
        ) : (
          <span>
            shard {Math.min(view.progress.shard + 1, view.progress.numShards)} / {view.progress.numShards}
          </span>
        )}
        <span>
          {view.backend ?? '–'} / {view.device}
        </span>
        <span class="muted">worker {view.workerId ?? '–'}</span>
        <RunActions
          run={view}
          rounds={view.parallel.rounds}
          slices={view.parallel.slices}
          onDone={run.reload}
        />
      </div>
      {view.error && <p class="error-text">{view.error}</p>}
      <progress max={view.progress.totalSteps} value={Math.min(step, view.progress.totalSteps)} />

      <h3>Training curves</h3>
      <ErrorBox error={metrics.error} />
      <div class="charts">
        {CURVES.map((curve) => {
          const columns = metricColumns(metrics.lines, [curve.name]);
          const withLnK = curve.name === 'teacherEntropy' && Number.isFinite(outDim);
          return (
            <Chart
              key={curve.name}
              name={curve.name}
              title={curve.title}
              data={withLnK ? withConstant(columns, maxEntropy(outDim)) : columns}
              series={[
                { label: curve.title, color: PALETTE[0] },
                ...(withLnK ? [{ label: `ln K (K = ${outDim})`, color: PALETTE[1], dashed: true }] : []),
              ]}
            />
          );
        })}
      </div>

      <KnnHistory evaluations={evaluations.data ?? []} />
      <Evaluations evaluations={evaluations.data ?? []} />
      <Exports runId={runId} exports={exports.data ?? []} />
      <Checkpoints artifacts={artifacts.data} />

      <h3>Config</h3>
      <pre class="config">{JSON.stringify(view.config, null, 2)}</pre>
    </section>
  );
}

function KnnHistory(props: { evaluations: EvaluationView[] }) {
  const { ks, columns } = knnColumns(props.evaluations);
  return (
    <div class="knn">
      <h3>k-NN history</h3>
      {ks.length === 0 ? (
        <p class="muted">No k-NN evaluation has completed yet.</p>
      ) : (
        <Chart
          name="knn"
          title="k-NN top-1 (%)"
          data={columns}
          points
          series={ks.map((k, index) => ({ label: `k = ${k}`, color: PALETTE[index % PALETTE.length] }))}
        />
      )}
    </div>
  );
}

function Evaluations(props: { evaluations: EvaluationView[] }) {
  if (props.evaluations.length === 0) return null;
  return (
    <div>
      <h3>Evaluations</h3>
      <table class="evaluations">
        <thead>
          <tr>
            <th>evaluation</th>
            <th>status</th>
            <th>step</th>
            <th>kind</th>
            <th>scores (baselines on the same images)</th>
          </tr>
        </thead>
        <tbody>
          {props.evaluations.map((view) => (
            <tr key={view.evalId} data-eval={view.evalId}>
              <td>{view.evalId}</td>
              <td>
                <span class={`status ${view.status}`}>{view.status}</span>
                {view.error && <div class="error-text">{view.error}</div>}
              </td>
              <td>{view.step ?? 'newest'}</td>
              <td>
                {view.kinds.join(', ')}
                {view.report && (
                  <span class="muted">{view.report.scheduled ? ' (scheduled)' : ' (on request)'}</span>
                )}
              </td>
              <td class="scores">
                {view.summary.length === 0 ? '–' : view.summary.map((line) => <div key={line}>{line}</div>)}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Exports(props: { runId: string; exports: AttentionView[] }) {
  if (props.exports.length === 0) return null;
  return (
    <div>
      <h3>Attention exports</h3>
      <table class="exports">
        <tbody>
          {props.exports.map((view) => (
            <tr key={view.exportId}>
              <td>
                {view.status === 'completed' ? (
                  <a href={attentionHref(props.runId, view.exportId)}>{view.exportId}</a>
                ) : (
                  view.exportId
                )}
              </td>
              <td>
                <span class={`status ${view.status}`}>{view.status}</span>
                {view.error && <div class="error-text">{view.error}</div>}
              </td>
              <td>
                {view.index
                  ? `step ${view.index.step}, ${view.index.images.length} images, ${view.index.heads} heads`
                  : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Checkpoints(props: { artifacts: RunArtifacts | null }) {
  const artifacts = props.artifacts;
  if (!artifacts) return null;
  return (
    <div>
      <h3>Checkpoints</h3>
      <p class="muted">
        Download links are presigned and expire after {Math.round(artifacts.expiresInSeconds / 60)} minutes.
      </p>
      <table class="checkpoints">
        <tbody>
          {[...artifacts.checkpoints].reverse().map((checkpoint) => (
            <tr key={checkpoint.step} data-step={checkpoint.step}>
              <td>step {checkpoint.step}</td>
              <td class="muted">{when(checkpoint.committedAt)}</td>
              <td>
                {checkpoint.files.map((file) => (
                  <a key={file.name} class="download" href={file.url} rel="noreferrer">
                    {file.name} <span class="muted">({bytes(file.size)})</span>
                  </a>
                ))}
              </td>
            </tr>
          ))}
          {artifacts.backbone && (
            <tr>
              <td>backbone</td>
              <td />
              <td>
                <a class="download" href={artifacts.backbone.url} rel="noreferrer">
                  backbone.safetensors <span class="muted">({bytes(artifacts.backbone.size)})</span>
                </a>
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
