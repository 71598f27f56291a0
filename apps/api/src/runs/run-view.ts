import { runIdentity, runProgress, type RunRecord } from '@dinoq/jobs';

/** What clients see of a run: the record plus where training stands. */
export function runView(run: RunRecord, committedSteps: number[] = run.committedSteps) {
  const { lastCommittedStep, progress } = runProgress(run, committedSteps);
  return {
    ...runIdentity(run),
    progress,
    plan: {
      datasetSize: run.datasetSize,
      itersPerEpoch: run.itersPerEpoch,
      stepsPerShard: run.stepsPerShard,
      numShards: run.numShards,
      totalSteps: run.totalSteps,
    },
    parallel: {
      /** Trained in DiLoCo rounds of slices rather than sequential shards. */
      rounds: run.rounds,
      /** Slices of the rounds that start from now on. */
      slices: run.slices,
      /** The round in flight: its steps, its slice count and the slices that have committed. */
      round: run.round,
    },
    lastCommittedStep,
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
