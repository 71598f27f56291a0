import pino from 'pino';
import { UnrecoverableError, WaitingError, type Job } from 'bullmq';
import {
  QueueName,
  type Continuation,
  type JobProducer,
  type RunRecord,
  type RunRepository,
} from '@dinoq/jobs';
import { KeyListing, type ObjectStore } from '@dinoq/storage';
import {
  ComputeJobError,
  ComputeProcessExitedError,
  type ComputeClient,
} from '../src/compute/compute-client';
import type { ComputeJob } from '../src/compute/protocol';
import { DeviceMutex } from '../src/device-mutex';
import { createJobProcessor, type ProcessorDeps } from '../src/job-processor';
import { workerJobs } from '../src/worker-jobs';

/*
 * The processor with its outside world replaced: what it hands to the compute process, how it
 * maps failures to BullMQ's retry semantics, and what it queues next.
 */

interface FakeJob {
  id: string;
  name: string;
  data: unknown;
  queueName: string;
  attemptsMade: number;
  attemptsStarted: number;
  opts: { attempts: number };
  progress: unknown[];
  logs: string[];
  movedToWait: number;
  updateProgress(value: unknown): Promise<void>;
  log(line: string): Promise<number>;
  moveToWait(token?: string): Promise<number>;
}

function fakeJob(name: string, data: unknown, attemptsMade = 0): FakeJob {
  return {
    id: name === 'train-shard' ? 'r1-g0-shard-0' : `${name}-1`,
    name,
    data,
    queueName: QueueName.TrainCpu,
    attemptsMade,
    attemptsStarted: attemptsMade + 1,
    opts: { attempts: 4 },
    progress: [],
    logs: [],
    movedToWait: 0,
    async updateProgress(value) {
      this.progress.push(value);
    },
    async log(line) {
      this.logs.push(line);
      return this.logs.length;
    },
    async moveToWait() {
      this.movedToWait++;
      return 0;
    },
  };
}

type ComputeBehaviour = (
  job: Omit<ComputeJob, 'requestId'>,
  handlers: Parameters<ComputeClient['run']>[1],
) => Promise<unknown>;

function setup(behaviour: ComputeBehaviour, runOverrides: Partial<RunRecord> = {}) {
  const computed: Omit<ComputeJob, 'requestId'>[] = [];
  const added: { queue: QueueName; name: string; data: unknown; opts: unknown }[] = [];
  const runUpdates: Partial<RunRecord>[] = [];
  const run = {
    runId: 'r1',
    status: 'running',
    device: 'cpu',
    generation: 0,
    retries: 0,
    retryBudget: 3,
    cancelRequested: false,
    totalSteps: 8,
    stepsPerShard: 4,
    lastCommittedStep: null,
    ...runOverrides,
  } as RunRecord;
  const shutdown = new AbortController();
  const mutex = new DeviceMutex();
  const deps: ProcessorDeps = {
    jobs: workerJobs,
    mutex,
    compute: {
      run: async (job: Omit<ComputeJob, 'requestId'>, handlers: Parameters<ComputeClient['run']>[1]) => {
        computed.push(job);
        return behaviour(job, handlers);
      },
    } as unknown as ComputeClient,
    producer: {
      add: async (queue: QueueName, name: string, data: unknown, opts: unknown) => {
        added.push({ queue, name, data, opts });
        return { id: 'added' };
      },
      addContinuation: async (work: Continuation) => {
        const name = work.kind === 'shard' ? 'train-shard' : 'merge-round';
        added.push({ queue: work.queue, name, data: work.data, opts: { jobId: work.jobId } });
        return { id: 'added' };
      },
    } as unknown as JobProducer,
    // An empty bucket, listed the way ObjectStore.list answers (awaited or iterated).
    store: { list: () => new KeyListing(async function* () {}) } as unknown as ObjectStore,
    runs: {
      update: async (_runId: string, change: (r: RunRecord) => Partial<RunRecord> | null) => {
        const patch = change(run);
        if (patch === null) return run;
        runUpdates.push(patch);
        return { ...run, ...patch };
      },
    } as unknown as RunRepository,
    workerId: 'w-1',
    logger: pino({ level: 'silent' }),
    shutdown: shutdown.signal,
    onCurrentJob: () => undefined,
  };
  const processor = createJobProcessor(deps);
  const process = (job: FakeJob) => processor(job as unknown as Job, 'token');
  return { process, computed, added, runUpdates, shutdown, mutex };
}

const shard = { runId: 'r1', shard: 0, fromStep: 0, toStep: 4 };

test('a training shard goes to the compute process; its next shard is queued under the deterministic id', async () => {
  const t = setup(async (_job, handlers) => {
    handlers.onProgress({ step: 0, toStep: 4 });
    handlers.onLog('info', 'committed step 4', {}, true);
    return { runId: 'r1', shard: 0, next: { shard: 1, fromStep: 4, toStep: 8, generation: 3 } };
  });
  const job = fakeJob('train-shard', shard);
  await expect(t.process(job)).resolves.toMatchObject({ next: { shard: 1 } });
  expect(t.computed).toEqual([
    {
      name: 'train-shard',
      data: shard,
      jobId: 'r1-g0-shard-0',
      queue: QueueName.TrainCpu,
      workerId: 'w-1',
      attempt: 1,
    },
  ]);
  expect(job.progress).toEqual([{ step: 0, toStep: 4 }]);
  expect(job.logs).toEqual(['committed step 4']);
  expect(t.added).toEqual([
    {
      queue: QueueName.TrainCpu,
      name: 'train-shard',
      data: { runId: 'r1', shard: 1, fromStep: 4, toStep: 8 },
      opts: { jobId: 'r1-g3-shard-1' },
    },
  ]);
  expect(t.mutex.locked).toBe(false);
});

test('the last shard queues nothing', async () => {
  const t = setup(async () => ({ runId: 'r1', shard: 1, next: null }));
  await t.process(fakeJob('train-shard', { ...shard, shard: 1, fromStep: 4, toStep: 8 }));
  expect(t.added).toEqual([]);
});

test('an invalid payload or an unknown job fails for good before reaching the device', async () => {
  const t = setup(async () => ({}));
  await expect(t.process(fakeJob('train-shard', { runId: 'R!', shard: 0 }))).rejects.toThrow(
    UnrecoverableError,
  );
  await expect(t.process(fakeJob('train-shard', { runId: 'R!', shard: 0 }))).rejects.toThrow(/runId/);
  await expect(t.process(fakeJob('mine-bitcoin', {}))).rejects.toThrow(/no handler for job "mine-bitcoin"/);
  expect(t.computed).toEqual([]);
});

test('an unrecoverable failure (a non-finite loss) fails without retries and marks the run failed', async () => {
  const t = setup(async () => {
    throw new ComputeJobError({
      name: 'UnrecoverableJobError',
      message: 'run r1: loss is NaN at step 3',
      unrecoverable: true,
    });
  });
  const error = await t.process(fakeJob('train-shard', shard)).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(UnrecoverableError);
  expect((error as Error).message).toBe('run r1: loss is NaN at step 3');
  expect(t.runUpdates).toEqual([
    { status: 'failed', error: 'shard job r1-g0-shard-0 failed: run r1: loss is NaN at step 3' },
  ]);
  expect(t.added).toEqual([]);
});

test('a dead compute process is a retryable failure; its last attempt starts a new attempt of the shard', async () => {
  const t = setup(async () => {
    throw new ComputeProcessExitedError(
      'compute process exited (code none, signal SIGKILL) while running job x',
    );
  });
  const early = await t.process(fakeJob('train-shard', shard, 0)).catch((e: unknown) => e);
  expect(early).toBeInstanceOf(ComputeProcessExitedError);
  expect(early).not.toBeInstanceOf(UnrecoverableError);
  expect(t.runUpdates).toEqual([]);

  await expect(t.process(fakeJob('train-shard', shard, 3))).rejects.toThrow(/compute process exited/);
  expect(t.runUpdates).toEqual([
    {
      status: 'queued',
      generation: 1,
      retries: 1,
      lastRetryReason: expect.stringMatching(/^shard job r1-g0-shard-0 failed: compute process exited/),
      error: null,
    },
  ]);
  expect(t.added).toEqual([
    { queue: QueueName.TrainCpu, name: 'train-shard', data: shard, opts: { jobId: 'r1-g1-shard-0' } },
  ]);
});

test('once the run-level retries are spent, a shard that fails for good fails the run with the reason', async () => {
  const t = setup(
    async () => {
      throw new ComputeProcessExitedError('compute process exited (code none, signal SIGKILL)');
    },
    { retries: 3 },
  );
  await expect(t.process(fakeJob('train-shard', shard, 3))).rejects.toThrow(/compute process exited/);
  expect(t.runUpdates).toEqual([
    {
      status: 'failed',
      error: expect.stringMatching(/compute process exited.*\(run-level retries spent: 3 of 3\)$/),
    },
  ]);
  expect(t.added).toEqual([]);
});

test('a failure of an earlier generation leaves the run as it is', async () => {
  const t = setup(
    async () => {
      throw new ComputeProcessExitedError('compute process exited');
    },
    { generation: 2 },
  );
  await expect(t.process(fakeJob('train-shard', shard, 3))).rejects.toThrow(/compute process exited/);
  expect(t.runUpdates).toEqual([]);
});

test('an abandoned job fails with "worker shutting down" so that it is retried from the last commit', async () => {
  const t = setup(async () => {
    throw new ComputeJobError({
      name: 'JobAbandonedError',
      message: 'worker shutting down',
      unrecoverable: false,
    });
  });
  const error = await t.process(fakeJob('train-shard', shard)).catch((e: unknown) => e);
  expect(error).not.toBeInstanceOf(UnrecoverableError);
  expect((error as Error).message).toMatch(/^worker shutting down/);
  expect(t.runUpdates).toEqual([]);
});

test('a job still waiting for the device at shutdown goes back to the queue without spending an attempt', async () => {
  let finish: () => void = () => undefined;
  const t = setup(() => new Promise((resolve) => (finish = () => resolve({ runId: 'r1', next: null }))));
  const running = t.process(fakeJob('train-shard', shard));
  await new Promise((resolve) => setImmediate(resolve));
  const waiting = fakeJob('evaluate', { runId: 'r1', evalId: 'e1', step: null, kinds: ['knn'] });
  const outcome = t.process(waiting).catch((e: unknown) => e);
  await new Promise((resolve) => setImmediate(resolve));
  t.shutdown.abort(new Error('worker shutting down'));
  expect(await outcome).toBeInstanceOf(WaitingError);
  expect(waiting.movedToWait).toBe(1);
  finish();
  await running;
  expect(t.computed.map((job) => job.name)).toEqual(['train-shard']);
});
