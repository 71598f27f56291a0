import { totalStepsOf } from './schedule-lengths';

/** Iterations per epoch with drop_last, as the reference sampler does (spec §7.7). */
export function itersPerEpochFor(datasetSize: number, batchSize: number): number {
  const n = Math.floor(datasetSize / batchSize);
  if (n < 1) throw new Error(`dataset of ${datasetSize} images is smaller than one batch (${batchSize})`);
  return n;
}

export interface RunPlan {
  itersPerEpoch: number;
  totalSteps: number;
  stepsPerShard: number;
  numShards: number;
}

/** How a run of `epochs` (or `steps`) over `datasetSize` images splits into training shards. */
export function planRun(
  datasetSize: number,
  train: { batchSize: number; epochs: number; steps?: number; stepsPerShard: number },
): RunPlan {
  const itersPerEpoch = itersPerEpochFor(datasetSize, train.batchSize);
  const totalSteps = totalStepsOf(train, itersPerEpoch);
  const stepsPerShard = Math.min(train.stepsPerShard, totalSteps);
  return { itersPerEpoch, totalSteps, stepsPerShard, numShards: Math.ceil(totalSteps / stepsPerShard) };
}
