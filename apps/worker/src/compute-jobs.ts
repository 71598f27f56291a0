import { allQueues, parseJob, type JobName, type JobPayload } from '@dinoq/jobs';
import { exportAttention } from './compute/handlers/attention';
import { evaluate } from './compute/handlers/evaluate';
import { importDataset } from './compute/handlers/import-dataset';
import { mergeRound } from './compute/handlers/merge-round';
import { trainShard } from './compute/handlers/train-shard';
import { trainSlice } from './compute/handlers/train-slice';
import type { ComputeContext, JobScope } from './compute/job-scope';
import { JobRegistry, jobsOnQueues } from './job-registry';
import { workerJobs, type WorkerJobRegistry } from './worker-jobs';

/** What each compute job hands back to the worker process (its `afterCompute` step gets it). */
export interface ComputeResults {
  'train-shard': Awaited<ReturnType<typeof trainShard>>;
  'train-slice': Awaited<ReturnType<typeof trainSlice>>;
  'merge-round': Awaited<ReturnType<typeof mergeRound>>;
  evaluate: Awaited<ReturnType<typeof evaluate>>;
  attention: Awaited<ReturnType<typeof exportAttention>>;
  import: Awaited<ReturnType<typeof importDataset>>;
}

export type ComputeJobName = keyof ComputeResults;

/** A job handler of the compute process, typed by the catalogue's payload for its job name. */
export type ComputeHandlers = {
  [N in ComputeJobName]: (
    ctx: ComputeContext,
    scope: JobScope,
    payload: JobPayload<N>,
  ) => Promise<ComputeResults[N]>;
};

export type ComputeJobRegistry = JobRegistry<ComputeHandlers>;

/** The compute process's half of the job registry: the handlers that do tensor work. */
export const computeJobs: ComputeJobRegistry = new JobRegistry<ComputeHandlers>('the compute process')
  .register('train-shard', trainShard)
  .register('train-slice', trainSlice)
  .register('merge-round', mergeRound)
  .register('evaluate', evaluate)
  .register('attention', exportAttention)
  .register('import', importDataset);

/**
 * Throws, naming the job and its queues, unless every job the worker process registers to run
 * here has exactly one handler. Every queue counts: the same compute process serves any worker.
 */
export function checkComputeJobs(
  compute: ComputeJobRegistry = computeJobs,
  worker: WorkerJobRegistry = workerJobs,
): void {
  const sentHere: JobName[] = worker.names((job) => job.runs === 'compute');
  compute.check(jobsOnQueues(allQueues, sentHere));
}

/** Runs the job of `scope` through its handler, with the payload parsed against the catalogue. */
export async function runComputeJob(
  ctx: ComputeContext,
  scope: JobScope,
  registry: ComputeJobRegistry = computeJobs,
): Promise<unknown> {
  const { name, queue, data } = scope.job;
  if (!registry.has(name))
    throw new Error(`the compute process has no handler for job "${name}" on queue ${queue}`);
  return dispatch(registry, ctx, scope, name, data);
}

function dispatch<N extends ComputeJobName>(
  registry: ComputeJobRegistry,
  ctx: ComputeContext,
  scope: JobScope,
  name: N,
  data: unknown,
): Promise<ComputeResults[N]> {
  const handler = registry.get(name);
  return handler(ctx, scope, parseJob(name, data));
}
