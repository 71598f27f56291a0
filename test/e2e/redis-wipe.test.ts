/**
 * Redis holds only transport: wiping it in the middle of a run (here a Redis of the test's own,
 * with FLUSHALL) loses queued and running jobs, and the API's reconciliation rebuilds the queue
 * from the run records and checkpoints in S3 until the run completes.
 */
import type { QueueEvents } from 'bullmq';
import { QueueName, shardJobId } from '@dinoq/jobs';
import { listCommitted, metricsKey } from '@dinoq/storage';
import { buildWorker } from './helpers/build';
import { startPrivateRedis, startStack, waitFor, type E2EStack, progressAtLeast } from './helpers/stack';
import type { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(150_000);

let redis: { url: string; close(): Promise<void> };
let stack: E2EStack;
let events: QueueEvents;

beforeAll(async () => {
  buildWorker();
  redis = await startPrivateRedis();
  stack = await startStack({ redisUrl: redis.url, reconcileIntervalMs: 1000 });
  events = await stack.events(QueueName.TrainCpu);
});

afterAll(async () => {
  await stack?.close();
  await redis?.close();
});

const committedByLog = (worker: WorkerProcess) =>
  worker.lines
    .map((line) => /: committed step (\d+)/.exec(String(line.msg)))
    .flatMap((m) => (m ? [Number(m[1])] : []));

test('FLUSHALL mid-run, with the worker alive and again after it crashed: the run still completes, each step committed once', async () => {
  const a = stack.startWorker('a');
  await a.ready();
  await stack.importDataset('fmnist', 32);
  // 36 epochs of 4 steps in three shards of 48: wide margins for the mid-shard events below.
  await stack.createRun('wiped', { train: { epochs: 36, stepsPerShard: 48 } });

  // 1. Wipe while shard 1 trains: its job vanishes under the live worker, which carries on.
  await progressAtLeast(events, shardJobId('wiped', 0, 1), 49);
  expect(await stack.redis.flushall()).toBe('OK');

  // 2. Wipe again after the worker died in shard 2: no job is left anywhere, and only the
  // reconciliation (every second, from S3) can bring it back.
  await progressAtLeast(events, shardJobId('wiped', 0, 2), 97);
  a.signal('SIGKILL');
  await a.exited;
  expect(await stack.redis.flushall()).toBe('OK');
  expect(await listCommitted(stack.store, 'wiped')).toEqual([48, 96]);
  expect((await stack.runs.get('wiped')).status).toBe('running');

  const b = stack.startWorker('b');
  await b.ready();
  const run = await stack.waitForRun(
    'wiped',
    (r) => r.status === 'completed',
    90_000,
    'completion after the wipes',
  );
  expect(run.committedSteps).toEqual([48, 96, 144]);
  expect(await listCommitted(stack.store, 'wiped')).toEqual([48, 96, 144]);
  expect(b.lines.some((line) => line.jobId === shardJobId('wiped', 0, 2) && line.msg === 'job started')).toBe(
    true,
  );
  // The worker logs a commit after writing run.json, so its line may trail the completed record.
  const committed = () => [...committedByLog(a), ...committedByLog(b)].sort((x, y) => x - y);
  await waitFor(async () => committed().length >= 3, 10_000, 'the last commit to be logged');
  expect(committed()).toEqual([48, 96, 144]);

  for (const shard of [0, 1, 2]) {
    const text = new TextDecoder().decode(await stack.store.getBytes(metricsKey('wiped', shard)));
    const steps = text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => (JSON.parse(line) as { step: number }).step);
    expect(steps).toEqual(Array.from({ length: 48 }, (_, i) => shard * 48 + i));
  }
});
