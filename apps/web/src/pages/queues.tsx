import { get } from '../api';
import type { HealthReport } from '../api-types';
import { ErrorBox } from '../errors';
import { when } from '../format';
import { useLive, useResource, useThrottled } from '../hooks';

/** The workers from the heartbeat registry (GET /health), and the queues through bull-board. */
export function QueuesPage() {
  const health = useResource(() => get<HealthReport>('/health'), []);
  const refetch = useThrottled(health.reload, 1000);
  useLive({ onHello: health.reload, onJob: (event) => event.event !== 'progress' && refetch() });
  const workers =
    'workers' in (health.data ?? {})
      ? (health.data as Extract<HealthReport, { workers: unknown }>).workers
      : null;
  return (
    <section class="queues">
      <h2>Workers</h2>
      <ErrorBox error={health.error} />
      <table class="workers">
        <thead>
          <tr>
            <th>worker</th>
            <th>device</th>
            <th>backend</th>
            <th>cores</th>
            <th>replicas</th>
            <th>data threads</th>
            <th>queues</th>
            <th>current job</th>
            <th>last seen</th>
          </tr>
        </thead>
        <tbody>
          {(workers?.list ?? []).map((worker) => (
            <tr key={worker.workerId} data-worker={worker.workerId}>
              <td>
                {worker.workerId}
                <div class="muted">{worker.hostname}</div>
              </td>
              <td>{worker.deviceClass}</td>
              <td>
                {worker.backend} <span class="muted">{worker.kernels}</span>
              </td>
              <td>{worker.cores}</td>
              <td>{worker.trainReplicas}</td>
              <td>{worker.dataThreads}</td>
              <td>{worker.queues.join(', ')}</td>
              <td>{worker.currentJob ?? '–'}</td>
              <td>{when(worker.lastSeen)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {workers && workers.count === 0 && (
        <p class="muted">No worker has sent a heartbeat in the last 30 s.</p>
      )}
      <h2>
        Queues{' '}
        <a href="/queues" target="_blank" class="muted">
          open in a new tab
        </a>
      </h2>
      <iframe class="board" src="/queues" title="queues" />
    </section>
  );
}
