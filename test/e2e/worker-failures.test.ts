/**
 * Workers that die or are told to stop in the middle of a training shard: the run must still end
 * with every step committed once, and the killed shard's retry must reproduce, bit for bit, what
 * an uninterrupted run computes.
 */
import type { QueueEvents } from 'bullmq';
import { Job } from 'bullmq';
import { QueueName, shardJobId } from '@dinoq/jobs';
import { checkpointFileKey, checkpointPrefix, listCommitted, metricsKey } from '@dinoq/storage';
import { ReconcileService } from '../../apps/api/src/reconcile/reconcile.service';
import { buildWorker } from './helpers/build';
import { startStack, waitFor, type E2EStack, progressAtLeast } from './helpers/stack';
import { processAlive, type LogLine, type WorkerProcess } from './helpers/worker-process';

jest.setTimeout(150_000);

let stack: E2EStack;
let events: QueueEvents;

beforeAll(async () => {
  buildWorker();
  stack = await startStack();
  events = await stack.events(QueueName.TrainCpu);
  const importer = stack.startWorker('importer', { DINOQ_WORKER_QUEUES: 'import' });
  await importer.ready();
  await stack.importDataset('fmnist', 32);
  await importer.stop();
});

afterAll(async () => {
  await stack?.close();
});

const commitLines = (worker: WorkerProcess) =>
  worker.lines.filter((line: LogLine) => /: committed step \d+/.test(String(line.msg)));

async function stepsInMetrics(runId: string, shard: number): Promise<number[]> {
  const text = new TextDecoder().decode(await stack.store.getBytes(metricsKey(runId, shard)));
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => (JSON.parse(line) as { step: number }).step);
}

test('SIGKILL mid-shard: another worker reruns the shard from the last commit and reproduces it bit for bit', async () => {
  // 8 epochs of 4 steps in two shards of 16 (about 1.5 s each).
  const config = { train: { epochs: 8, stepsPerShard: 16 } };
  const a = stack.startWorker('a');
  await a.ready();
  const computePid = Number(
    (a.lines.find((line) => line.msg === 'compute process started') ?? {}).computePid,
  );
  expect(computePid).toBeGreaterThan(0);

  await stack.createRun('killed', config);
  const step = await progressAtLeast(events, shardJobId('killed', 0, 0), 1);
  a.signal('SIGKILL');
  expect(step).toBeLessThan(15);
  expect(await a.exited).toMatchObject({ signal: 'SIGKILL' });
  // Nothing of the interrupted shard was committed.
  expect(await listCommitted(stack.store, 'killed')).toEqual([]);
  // The compute process follows its parent instead of training on as an orphan.
  await waitFor(async () => !processAlive(computePid), 10_000, 'the orphaned compute process to exit');

  // One replica on the main thread, with the augmentation in a thread of its own.
  const b = stack.startWorker('b', { DINOQ_TRAIN_REPLICAS: '1', DINOQ_DATA_THREADS: '1' });
  await b.ready();
  // BullMQ's stall check hands the job over once the dead worker's lock (3 s) expires.
  const run = await stack.waitForRun(
    'killed',
    (r) => r.status === 'completed',
    90_000,
    'completion after the kill',
  );
  expect(run.committedSteps).toEqual([16, 32]);
  expect(await listCommitted(stack.store, 'killed')).toEqual([16, 32]);
  expect(await stepsInMetrics('killed', 0)).toEqual(Array.from({ length: 16 }, (_, i) => i));
  expect(await stepsInMetrics('killed', 1)).toEqual(Array.from({ length: 16 }, (_, i) => 16 + i));
  const shard1 = new TextDecoder().decode(await stack.store.getBytes(metricsKey('killed', 1)));
  expect(JSON.parse(shard1.split('\n')[0])).toMatchObject({ replicas: 1, dataThreads: 1 });

  // Each step was committed exactly once, by the second worker, never over an existing commit.
  // The worker logs a commit after writing run.json, so its line may trail the completed record.
  await waitFor(async () => commitLines(b).length >= 2, 10_000, 'both commits to be logged');
  const commits = [...commitLines(a), ...commitLines(b)].map((line) => String(line.msg));
  expect(commits).toHaveLength(2);
  expect(commits.some((msg) => msg.includes('already committed'))).toBe(false);
  expect(commitLines(a)).toHaveLength(0);

  const shard0 = await Job.fromId(stack.producer.queue(QueueName.TrainCpu), shardJobId('killed', 0, 0));
  expect(await shard0?.getState()).toBe('completed');
  expect(shard0?.attemptsStarted).toBe(2);

  // The same seed without interruption, under another run id.
  await stack.createRun('uninterrupted', config);
  await stack.waitForRun('uninterrupted', (r) => r.status === 'completed', 90_000, 'the reference run');
  for (const committed of [16, 32]) {
    const killed = await stack.store.getBytes(checkpointFileKey('killed', committed, 'student.safetensors'));
    const reference = await stack.store.getBytes(
      checkpointFileKey('uninterrupted', committed, 'student.safetensors'),
    );
    expect(killed.byteLength).toBeGreaterThan(0);
    expect(Buffer.from(killed).equals(Buffer.from(reference))).toBe(true);
  }
  await b.stop();
});

test('SIGTERM mid-shard: the worker exits 0 within the grace period, commits nothing, and the shard is retried elsewhere', async () => {
  const graceMs = 1000;
  const c = stack.startWorker('c', { DINOQ_SHUTDOWN_GRACE_MS: String(graceMs) });
  const ready = await c.ready();
  const workerId = String(ready.workerId);
  const announced = await waitFor(() => stack.redis.get(`dinoq:workers:${workerId}`), 5_000, 'the heartbeat');
  expect(JSON.parse(announced)).toMatchObject({ workerId, deviceClass: 'cpu', backend: 'wasm', pid: c.pid });

  // One shard of 400 steps: far longer than the grace period even with native matmul kernels.
  await stack.createRun('terminated', { train: { epochs: 100, stepsPerShard: 400 } });
  const jobId = shardJobId('terminated', 0, 0);
  await progressAtLeast(events, jobId, 1);
  // An evaluation taken by the same worker waits for the device behind the shard.
  const waiting = await stack.producer.add(
    QueueName.EvaluateCpu,
    'evaluate',
    { runId: 'terminated', evalId: 'behind-shard', step: null, kinds: ['knn'], scheduled: false },
    { jobId: 'terminated-behind-shard' },
  );
  await waitFor(async () => (await waiting.getState()) === 'active', 5_000, 'the evaluation to be taken');
  const signalledAt = Date.now();
  c.signal('SIGTERM');
  const exit = await c.exited;
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.at - signalledAt).toBeLessThan(graceMs + 5_000);
  expect(c.lines.some((line) => line.msg === 'grace period over: abandoning the current job')).toBe(true);

  // No checkpoint of the unfinished shard: no COMMITTED and not even a stray file.
  expect(await listCommitted(stack.store, 'terminated')).toEqual([]);
  expect(await stack.store.list(checkpointPrefix('terminated', 400))).toEqual([]);
  expect(await stack.redis.get(`dinoq:workers:${workerId}`)).toBeNull();

  const job = await Job.fromId(stack.producer.queue(QueueName.TrainCpu), jobId);
  expect(job?.failedReason).toMatch(/^worker shutting down/);
  expect(job?.attemptsMade).toBe(1);
  expect(['delayed', 'waiting']).toContain(await job?.getState());
  expect((await stack.runs.get('terminated')).status).toBe('running');
  // The evaluation never started: it went back to the queue without spending an attempt.
  const returned = await Job.fromId(stack.producer.queue(QueueName.EvaluateCpu), 'terminated-behind-shard');
  expect(await returned?.getState()).toBe('waiting');
  expect(returned?.attemptsMade).toBe(0);
  expect(returned?.failedReason ?? '').toBe('');
  await returned?.remove();

  const d = stack.startWorker('d');
  await d.ready();
  const run = await stack.waitForRun(
    'terminated',
    (r) => r.status === 'completed',
    90_000,
    'completion by another worker',
  );
  expect(run.committedSteps).toEqual([400]);
  expect(await stepsInMetrics('terminated', 0)).toEqual(Array.from({ length: 400 }, (_, i) => i));

  // An idle worker stops at once.
  const idleSince = Date.now();
  d.signal('SIGTERM');
  expect(await d.exited).toMatchObject({ code: 0 });
  expect(Date.now() - idleSince).toBeLessThan(5_000);
});

test('a compute process that dies mid-shard fails the attempt; the worker forks a fresh one and the retry completes', async () => {
  const e = stack.startWorker('e');
  await e.ready();
  const computePids = () =>
    e.lines.filter((line) => line.msg === 'compute process started').map((line) => Number(line.computePid));
  const [firstPid] = computePids();

  // Long enough (400 steps) that the kill lands mid-shard even with native matmul kernels.
  await stack.createRun('child-crash', { train: { epochs: 100, stepsPerShard: 400 } });
  const jobId = shardJobId('child-crash', 0, 0);
  await progressAtLeast(events, jobId, 1);
  process.kill(firstPid, 'SIGKILL');

  const run = await stack.waitForRun(
    'child-crash',
    (r) => r.status === 'completed',
    90_000,
    'completion after the crash',
  );
  expect(run.committedSteps).toEqual([400]);
  expect(e.running).toBe(true);
  const pids = computePids();
  expect(pids).toHaveLength(2);
  expect(pids[1]).not.toBe(firstPid);
  // The run record is written inside the job; BullMQ counts the attempt once the job has returned.
  const job = await waitFor(
    async () => {
      const j = await Job.fromId(stack.producer.queue(QueueName.TrainCpu), jobId);
      return (await j?.getState()) === 'completed' ? j : null;
    },
    10_000,
    'the shard job to be marked completed',
  );
  // One failed attempt, one that completed.
  expect(job?.attemptsStarted).toBe(2);
  expect(job?.attemptsMade).toBe(2);
  expect(job?.stacktrace?.join('\n')).toMatch(
    /compute process exited \(code none, signal SIGKILL\) while running job/,
  );
  await e.stop();
});

test('a shard whose worker is killed twice fails for good in BullMQ; the run makes a new attempt on its own and completes', async () => {
  const config = { train: { epochs: 12, stepsPerShard: 48 } };
  await stack.createRun('killed-twice', config);
  const jobId = shardJobId('killed-twice', 0, 0);
  for (const [attempt, name] of [
    [1, 'f1'],
    [2, 'f2'],
  ] as const) {
    const worker = stack.startWorker(name);
    await worker.ready();
    // This worker's own attempt, not a late progress event of the one killed before it.
    await waitFor(
      async () => worker.lines.some((line) => line.msg === 'job started' && line.attempt === attempt),
      60_000,
      `attempt ${attempt} to start on ${name}`,
    );
    await progressAtLeast(events, jobId, 1);
    worker.signal('SIGKILL');
    await worker.exited;
  }
  // A live worker's stall check finds the job stalled a second time: BullMQ fails it for good.
  const g = stack.startWorker('g');
  await g.ready();
  const queue = stack.producer.queue(QueueName.TrainCpu);
  await waitFor(
    async () => (await (await Job.fromId(queue, jobId))?.getState()) === 'failed',
    60_000,
    'BullMQ to fail the twice-stalled job',
  );
  // Read after the state: a job fetched before it failed carries no failedReason.
  const failed = await Job.fromId(queue, jobId);
  expect(failed?.failedReason).toMatch(/stalled more than allowable limit/);
  expect((await stack.runs.get('killed-twice')).status).toBe('running');

  // The API's periodic reconciliation sees the failed job of an active run and starts attempt g1.
  const reconcile = stack.api.app.get(ReconcileService);
  const run = await waitFor(
    async () => {
      await reconcile.reconcileOnce();
      const current = await stack.runs.get('killed-twice');
      return current.status === 'completed' ? current : null;
    },
    90_000,
    'the run to complete on a new attempt',
    500,
  );
  expect(run).toMatchObject({ generation: 1, retries: 1, committedSteps: [48], error: null });
  expect(run.lastRetryReason).toMatch(/stalled more than allowable limit/);
  expect(await stepsInMetrics('killed-twice', 0)).toEqual(Array.from({ length: 48 }, (_, i) => i));
  await g.stop();
});
