import { useState } from 'preact/hooks';
import { post } from './api';
import type { RunSummary } from './api-types';
import { ErrorBox } from './errors';

/** Cancel, resume and resize, where the run's state allows them; the API decides in the end. */
export function RunActions(props: {
  run: Pick<RunSummary, 'runId' | 'status' | 'cancelRequested'>;
  rounds?: boolean;
  slices?: number;
  onDone(): void;
}) {
  const { run } = props;
  const [error, setError] = useState<unknown>(null);
  const [slices, setSlices] = useState(String(props.slices ?? 1));
  const act = async (path: string, body?: unknown) => {
    setError(null);
    try {
      await post(`/runs/${encodeURIComponent(run.runId)}/${path}`, body);
      props.onDone();
    } catch (failure) {
      setError(failure);
    }
  };
  const active = run.status === 'queued' || run.status === 'running';
  return (
    <span class="actions">
      {active && !run.cancelRequested && <button onClick={() => act('cancel')}>Cancel</button>}
      {(run.status === 'failed' || run.status === 'cancelled') && (
        <button onClick={() => act('resume')}>Resume</button>
      )}
      {active && props.rounds && (
        <span class="resize">
          <input
            type="number"
            min={1}
            value={slices}
            aria-label="slices"
            onInput={(e) => setSlices((e.target as HTMLInputElement).value)}
          />
          <button onClick={() => act('resize', { slices: Number(slices) })}>Resize</button>
        </span>
      )}
      <ErrorBox error={error} />
    </span>
  );
}
