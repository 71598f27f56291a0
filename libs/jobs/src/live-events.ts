import type { QueueName } from './queues';
import type { StepMetricsLine } from './schemas';

/*
 * What the API pushes to dashboards (GET /events, server-sent events), read from BullMQ's queue
 * events. The page refetches what an event says changed; a training job's progress carries the
 * step's whole metrics line, so curves move between checkpoints too.
 */

export const liveJobEventNames = ['added', 'active', 'progress', 'completed', 'failed'] as const;
export type LiveJobEventName = (typeof liveJobEventNames)[number];

export interface LiveJobEvent {
  event: LiveJobEventName;
  queue: QueueName;
  jobId: string;
  /** Job name (`train-shard`, `evaluate`, ...); null when the job was removed before it was read. */
  name: string | null;
  /** The run the job works for; null for jobs of no run (imports, sweeps) or removed jobs. */
  runId: string | null;
  /** The job's progress value on `progress` events (a TrainingProgress for training jobs). */
  progress: Record<string, unknown> | null;
  failedReason: string | null;
}

/** The progress a training job (shard or slice) reports after every step. */
export interface TrainingProgress {
  step: number;
  toStep: number;
  loss: number;
  imagesPerSecond: number;
  /** The step's metrics line, as it will be stored when the job commits. */
  metrics: StepMetricsLine;
}

/** The first message of every event stream: sent again on each reconnect, so pages know to refetch. */
export interface LiveHello {
  connectedAt: string;
}
