import pino from 'pino';
import { UnrecoverableError, type Job } from 'bullmq';
import { QueueName, allQueues, type EvaluateJob, type JobProducer, type RunRepository } from '@dinoq/jobs';
import type { ObjectStore } from '@dinoq/storage';
import type { ComputeClient } from '../src/compute/compute-client';
import type { ComputeContext, JobScope } from '../src/compute/job-scope';
import {
  checkComputeJobs,
  computeJobs,
  runComputeJob,
  type ComputeHandlers,
  type ComputeResults,
} from '../src/compute-jobs';
import { DeviceMutex } from '../src/device-mutex';
import { createJobProcessor } from '../src/job-processor';
import { JobRegistry, jobsOnQueues } from '../src/job-registry';
import { workerJobs, type WorkerJobs } from '../src/worker-jobs';

/*
 * The job registry: start-up refuses a job without a handler or with two, naming the job and its
 * queue, and both processes dispatch through it with the payload parsed against the catalogue.
 */

const evaluation = { runId: 'r1', evalId: 'e1', step: null, kinds: ['knn'] };

function scopeOf(name: string, data: unknown): JobScope {
  return {
    job: { requestId: 1, name, data, jobId: 'j1', queue: QueueName.EvaluateCpu, workerId: 'w', attempt: 1 },
    progress: () => undefined,
    log: () => undefined,
    throwIfAbandoned: () => undefined,
  } as JobScope;
}

const noContext = {} as ComputeContext;

test('the jobs a set of queues receives come from the catalogue, each with its queues among them', () => {
  expect(jobsOnQueues([QueueName.EvaluateCpu, QueueName.Import])).toEqual(
    new Map([
      ['evaluate', [QueueName.EvaluateCpu]],
      ['evaluate-sweep', [QueueName.EvaluateCpu]],
      ['import', [QueueName.Import]],
    ]),
  );
  expect(jobsOnQueues(allQueues, ['train-shard'])).toEqual(
    new Map([['train-shard', [QueueName.TrainCpu, QueueName.TrainGpu]]]),
  );
});

test('a job the queues receive without a handler refuses the start, naming the job and its queue', () => {
  const registry = new JobRegistry<WorkerJobs>('the worker process').register('evaluate', {
    runs: 'compute',
  });
  expect(() => registry.check(jobsOnQueues([QueueName.EvaluateCpu]))).toThrow(
    'the worker process cannot start: job "evaluate-sweep" on queue evaluate-cpu has no handler',
  );
  // Jobs of queues the process does not consume need no handler.
  expect(() => registry.check(jobsOnQueues([QueueName.Attention]))).toThrow(/job "attention"/);
  expect(() => new JobRegistry<WorkerJobs>('w').check(jobsOnQueues([]))).not.toThrow();
});

test('a job registered twice refuses the start, naming the job and its queues', () => {
  const registry = new JobRegistry<WorkerJobs>('the worker process')
    .register('import', { runs: 'compute' })
    .register('import', { runs: 'compute' });
  expect(() => registry.check(jobsOnQueues([QueueName.Import]))).toThrow(
    'the worker process cannot start: job "import" on queue import has 2 handlers; register it once',
  );
  expect(() => registry.get('import')).toThrow('the worker process has 2 handlers for job "import"');
});

test('every problem is named at once', () => {
  const registry = new JobRegistry<WorkerJobs>('the worker process')
    .register('train-shard', { runs: 'compute' })
    .register('train-shard', { runs: 'compute' })
    .register('train-slice', { runs: 'compute' })
    .register('merge-round', { runs: 'compute' });
  expect(() => registry.check(jobsOnQueues([QueueName.TrainGpu, QueueName.Attention]))).toThrow(
    'the worker process cannot start: job "train-shard" on queue train-gpu has 2 handlers; register it once; ' +
      'job "attention" on queue attention has no handler',
  );
});

test("the worker's registry covers every queue, and the compute process handles every job sent to it", () => {
  expect(() => workerJobs.check(jobsOnQueues(allQueues))).not.toThrow();
  expect(() => checkComputeJobs()).not.toThrow();
  expect(workerJobs.names((job) => job.runs === 'inline')).toEqual(['evaluate-sweep']);
});

test('the compute process refuses to start when a job the worker sends it has no handler there', () => {
  const incomplete = new JobRegistry<ComputeHandlers>('the compute process')
    .register('train-shard', computeJobs.get('train-shard'))
    .register('train-slice', computeJobs.get('train-slice'))
    .register('merge-round', computeJobs.get('merge-round'))
    .register('evaluate', computeJobs.get('evaluate'))
    .register('import', computeJobs.get('import'));
  expect(() => checkComputeJobs(incomplete)).toThrow(
    'the compute process cannot start: job "attention" on queue attention has no handler',
  );
  // A job the worker process runs inline needs no compute handler.
  const sweepInline = new JobRegistry<WorkerJobs>('the worker process').register('import', {
    runs: 'compute',
  });
  expect(() => checkComputeJobs(incomplete, sweepInline)).not.toThrow();
});

test('a compute handler receives the payload parsed against the catalogue (defaults filled in)', async () => {
  const received: EvaluateJob[] = [];
  const report = { evalId: 'e1' } as ComputeResults['evaluate'];
  const registry = new JobRegistry<ComputeHandlers>('the compute process').register(
    'evaluate',
    async (_ctx, _scope, payload) => {
      received.push(payload);
      return report;
    },
  );
  await expect(runComputeJob(noContext, scopeOf('evaluate', evaluation), registry)).resolves.toBe(report);
  expect(received).toEqual([{ ...evaluation, scheduled: false }]);

  await expect(
    runComputeJob(noContext, scopeOf('evaluate', { ...evaluation, kinds: [] }), registry),
  ).rejects.toThrow(/invalid evaluate job payload: kinds/);
  await expect(runComputeJob(noContext, scopeOf('import', {}), registry)).rejects.toThrow(
    'the compute process has no handler for job "import" on queue evaluate-cpu',
  );
  expect(received).toHaveLength(1);
});

test('an inline handler receives the parsed payload in the worker process, without the device', async () => {
  const received: unknown[] = [];
  const jobs = new JobRegistry<WorkerJobs>('the worker process').register('evaluate', {
    runs: 'inline',
    handler: async ({ payload, job }) => {
      received.push({ payload, jobId: job.id });
      return 'swept';
    },
  });
  const mutex = new DeviceMutex();
  const held = await mutex.acquire('busy', new AbortController().signal);
  const processor = createJobProcessor({
    jobs,
    mutex,
    compute: {} as ComputeClient,
    producer: {} as JobProducer,
    store: {} as ObjectStore,
    runs: {} as RunRepository,
    workerId: 'w-1',
    logger: pino({ level: 'silent' }),
    shutdown: new AbortController().signal,
    onCurrentJob: () => undefined,
  });
  const job = (name: string, data: unknown) =>
    ({ id: 'j1', name, data, queueName: QueueName.EvaluateCpu }) as unknown as Job;
  // The device is held by another job: an inline job does not wait for it.
  await expect(processor(job('evaluate', evaluation))).resolves.toBe('swept');
  expect(received).toEqual([{ payload: { ...evaluation, scheduled: false }, jobId: 'j1' }]);
  await expect(processor(job('import', { datasetName: 'd' }))).rejects.toThrow(UnrecoverableError);
  await expect(processor(job('import', { datasetName: 'd' }))).rejects.toThrow(
    'no handler for job "import" on queue evaluate-cpu',
  );
  held();
});

// ts-jest type-checks this file: a @ts-expect-error that no longer meets an error fails the suite.
test('a handler must take the payload of the job it is registered for (checked by the compiler)', () => {
  const importHandler: ComputeHandlers['import'] = computeJobs.get('import');
  const registry = new JobRegistry<ComputeHandlers>('the compute process');
  // @ts-expect-error an import handler cannot take evaluate payloads
  registry.register('evaluate', importHandler);
  // @ts-expect-error an inline handler of evaluate-sweep payloads cannot run evaluate jobs
  new JobRegistry<WorkerJobs>('w').register('evaluate', workerJobs.get('evaluate-sweep'));
  // @ts-expect-error no such job in the catalogue
  registry.register('mine-bitcoin', importHandler);
});
