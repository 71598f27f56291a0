import { z } from 'zod';
import { nextShard, runRecordSchema, type RunRecord } from './run-record';

type ProgressFields = Pick<
  RunRecord,
  | 'committedSteps'
  | 'lastCommittedStep'
  | 'latestMetrics'
  | 'stepsPerShard'
  | 'totalSteps'
  | 'numShards'
  | 'itersPerEpoch'
>;

/**
 * Where training stands. `committedSteps` may come from storage (the COMMITTED markers), which can
 * be ahead of run.json; the latest metrics line can be ahead of both.
 */
export function runProgress(run: ProgressFields, committedSteps: number[] = run.committedSteps) {
  const lastCommittedStep =
    committedSteps.length > 0 ? committedSteps[committedSteps.length - 1] : run.lastCommittedStep;
  const reported = run.latestMetrics?.step;
  const step = Math.max(lastCommittedStep ?? 0, typeof reported === 'number' ? reported : 0);
  return {
    lastCommittedStep,
    progress: {
      /** The shard that is training or will train next; equals `numShards` once every step is committed. */
      shard: nextShard(run, lastCommittedStep) ?? run.numShards,
      numShards: run.numShards,
      step,
      totalSteps: run.totalSteps,
      epoch: Math.floor(step / run.itersPerEpoch),
      epochs: Math.ceil(run.totalSteps / run.itersPerEpoch),
    },
  };
}

const count = z.number().int().min(0);

/** One row of a runs table: small enough to keep 10,000 of them in Redis and page through them. */
export const runSummarySchema = z.object({
  runId: z.string(),
  dataset: z.string(),
  device: runRecordSchema.shape.device,
  status: runRecordSchema.shape.status,
  cancelRequested: z.boolean(),
  generation: count,
  progress: z.object({
    shard: count.describe('the shard training or next to train; numShards once every step is committed'),
    numShards: count,
    step: count,
    totalSteps: count,
    epoch: count,
    epochs: count,
  }),
  lastCommittedStep: count.nullable(),
  loss: z.number().nullable().describe('training loss of the latest reported step'),
  imagesPerSecond: z.number().nullable().describe('throughput of the latest reported step'),
  backend: z.string().nullable(),
  workerId: z.string().nullable(),
  error: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export type RunSummary = z.infer<typeof runSummarySchema>;

function latestNumber(run: RunRecord, name: string): number | null {
  const value = run.latestMetrics?.[name];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** What every view of a run starts with: which run, on what, and its state. */
export function runIdentity(run: RunRecord) {
  return {
    runId: run.runId,
    dataset: run.datasetName,
    device: run.device,
    status: run.status,
    cancelRequested: run.cancelRequested,
    generation: run.generation,
  };
}

export function runSummary(run: RunRecord): RunSummary {
  return {
    ...runIdentity(run),
    ...runProgress(run),
    loss: latestNumber(run, 'loss'),
    imagesPerSecond: latestNumber(run, 'imagesPerSecond'),
    backend: run.backend,
    workerId: run.workerId,
    error: run.error,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
  };
}
