import { nextShard, type RunRecord } from '@dinoq/jobs';

/** What clients see of a run: the record plus where training stands. */
export function runView(run: RunRecord, committedSteps: number[] = run.committedSteps) {
  const lastCommitted =
    committedSteps.length > 0 ? committedSteps[committedSteps.length - 1] : run.lastCommittedStep;
  const reported = run.latestMetrics?.step;
  const step = Math.max(lastCommitted ?? 0, typeof reported === 'number' ? reported : 0);
  const shard = nextShard(run, lastCommitted);
  return {
    runId: run.runId,
    dataset: run.datasetName,
    device: run.device,
    status: run.status,
    cancelRequested: run.cancelRequested,
    generation: run.generation,
    progress: {
      /** The shard that is training or will train next; equals `numShards` once every step is committed. */
      shard: shard ?? run.numShards,
      numShards: run.numShards,
      step,
      totalSteps: run.totalSteps,
      epoch: Math.floor(step / run.itersPerEpoch),
      epochs: Math.ceil(run.totalSteps / run.itersPerEpoch),
    },
    plan: {
      datasetSize: run.datasetSize,
      itersPerEpoch: run.itersPerEpoch,
      stepsPerShard: run.stepsPerShard,
      numShards: run.numShards,
      totalSteps: run.totalSteps,
    },
    lastCommittedStep: lastCommitted,
    committedCheckpoints: committedSteps,
    latestMetrics: run.latestMetrics,
    backend: run.backend,
    workerId: run.workerId,
    error: run.error,
    config: run.config,
    createdAt: run.createdAt,
    updatedAt: run.updatedAt,
  };
}

export type RunView = ReturnType<typeof runView>;
