import type { Job } from 'bullmq';
import type { JobName, JobPayload } from '@dinoq/jobs';
import type { ComputeJobName, ComputeResults } from './compute-jobs';
import { evaluateSweep, type SweepDeps } from './evaluate-sweep';
import { JobRegistry } from './job-registry';
import type { Logger } from './logger';
import { queueNextRound, queueNextShard, retryRunAfterFinalFailure } from './shard-steps';

/** The outside world a step in the worker process may use. */
export type WorkerServices = SweepDeps;

/** One job as a step in the worker process sees it: its payload is parsed against the catalogue. */
export interface WorkerStep<N extends JobName> {
  job: Job;
  payload: JobPayload<N>;
  services: WorkerServices;
  /** Bound to the job: its lines carry the job id, name and queue. */
  log: Logger;
}

/** Runs in the worker process without waiting for the device: cheap I/O only (e.g. queueing jobs). */
export interface InlineJob<N extends JobName> {
  runs: 'inline';
  handler: (step: WorkerStep<N>) => Promise<unknown>;
}

export type ComputeResult<N extends JobName> = N extends ComputeJobName ? ComputeResults[N] : never;

/** Runs in the compute process behind the device mutex; the steps around it run in the worker process. */
export interface ComputeJobSteps<N extends JobName> {
  runs: 'compute';
  /** With the compute process's result, before the job completes (a failure fails the attempt). */
  afterCompute?: (step: WorkerStep<N>, result: ComputeResult<N>) => Promise<void>;
  /** Once the job has failed for good: unrecoverable, or its last attempt spent. */
  afterFinalFailure?: (step: WorkerStep<N>, error: Error) => Promise<void>;
}

export type WorkerJob<N extends JobName> = InlineJob<N> | ComputeJobSteps<N>;
export type WorkerJobs = { [N in JobName]: WorkerJob<N> };
export type WorkerJobRegistry = JobRegistry<WorkerJobs>;

/**
 * The worker process's half of the job registry: where each job runs, and the steps around the
 * compute process's handlers (those are registered in compute-jobs.ts).
 */
export const workerJobs: WorkerJobRegistry = new JobRegistry<WorkerJobs>('the worker process')
  .register('train-shard', {
    runs: 'compute',
    afterCompute: queueNextShard,
    afterFinalFailure: retryRunAfterFinalFailure,
  })
  .register('train-slice', { runs: 'compute', afterFinalFailure: retryRunAfterFinalFailure })
  .register('merge-round', {
    runs: 'compute',
    afterCompute: queueNextRound,
    afterFinalFailure: retryRunAfterFinalFailure,
  })
  .register('evaluate', { runs: 'compute' })
  .register('attention', { runs: 'compute' })
  .register('import', { runs: 'compute' })
  .register('evaluate-sweep', {
    runs: 'inline',
    handler: async ({ payload, services, log }) => {
      const result = await evaluateSweep({ ...services, logger: log }, payload);
      log.info({ enqueued: result.enqueued.map((entry) => entry.jobId) }, 'evaluate-sweep done');
      return result;
    },
  });
