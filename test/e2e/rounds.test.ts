/**
 * One run across several worker processes: DiLoCo rounds as BullMQ flows (a merge job whose
 * children are the slices' training jobs). Killed slices and merges, a Redis wipe mid-round and a
 * resize between rounds all end in the same final bytes as an undisturbed run with the same seed.
 */
import { QueueEvents } from 'bullmq';
import { QueueName, roundJobId, sliceJobId } from '@dinoq/jobs';
import { checkpointFileKey, listCommitted, metricsKey, roundPrefix } from '@dinoq/storage';
import { buildWorker } from './helpers/build';
import { progressAtLeast, startPrivateRedis, startStack, waitFor, type E2EStack } from './helpers/stack';
import type { LogLine, WorkerProcess } from './helpers/worker-process';

jest.setTimeout(240_000);

let redis: { url: string; close(): Promise<void> };
let stack: E2EStack;
let events: QueueEvents;

// 32 images in batches of 8: 4 steps an epoch; 12 epochs are 48 steps, rounds of 2 × 8 steps.
// The paper's outer step, so that its momentum (outer.safetensors) is part of every checkpoint compared.
const ROUNDS = {
  train: { epochs: 12 },
  parallel: { slices: 2, syncEverySteps: 8, outer: { lr: 0.7, momentum: 0.9 } },
};
const FINAL = 48;
const CHECKPOINT_FILES = [
  'student.safetensors',
  'teacher.safetensors',
  'optimizer.safetensors',
  'state.json',
  'outer.safetensors',
];

/** Every worker trains with one replica, so runs on different workers add floats in one order. */
const startWorker = (name: string) => stack.startWorker(name, { DINOQ_TRAIN_REPLICAS: '1' });

async function startWorkers(...names: string[]): Promise<WorkerProcess[]> {
  const workers = names.map(startWorker);
  await Promise.all(workers.map((worker) => worker.ready()));
  return workers;
}

const logged = (workers: WorkerProcess[], pattern: RegExp): string[] =>
  workers.flatMap((worker) =>
    worker.lines.map((line: LogLine) => String(line.msg)).filter((msg) => pattern.test(msg)),
  );

/** The worker that started `jobId` most recently. */
const holderOf = (workers: WorkerProcess[], jobId: string) =>
  workers.find((worker) => worker.lines.some((line) => line.jobId === jobId && line.msg === 'job started'));

async function finalFiles(runId: string): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  for (const file of CHECKPOINT_FILES) {
    out[file] = Buffer.from(await stack.store.getBytes(checkpointFileKey(runId, FINAL, file)));
  }
  return out;
}

async function expectSameFinalBytes(runId: string): Promise<void> {
  const [run, reference] = await Promise.all([finalFiles(runId), finalFiles('reference')]);
  for (const file of CHECKPOINT_FILES) {
    expect([file, run[file].equals(reference[file])]).toEqual([file, true]);
  }
}

beforeAll(async () => {
  buildWorker();
  redis = await startPrivateRedis();
  stack = await startStack({ redisUrl: redis.url, reconcileIntervalMs: 1000 });
  events = await stack.events(QueueName.TrainCpu);
  const importer = stack.startWorker('importer', { DINOQ_WORKER_QUEUES: 'import' });
  await importer.ready();
  await stack.importDataset('fmnist', 32);
  await stack.importDataset('victim', 32);
  await importer.stop();
});

afterAll(async () => {
  await stack?.close();
  await redis?.close();
});

test('3 rounds × 2 slices on two worker processes: each round merged once, slices spread over both', async () => {
  const workers = await startWorkers('a', 'b');
  const created = await stack.createRun('reference', ROUNDS);
  expect(created).toMatchObject({ rounds: true, slices: 2, round: { index: 0, fromStep: 0, toStep: 16 } });

  const run = await stack.waitForRun('reference', (r) => r.status === 'completed', 120_000, 'the rounds');
  expect(run.committedSteps).toEqual([16, 32, FINAL]);
  expect(run.round).toBeNull();
  expect(await listCommitted(stack.store, 'reference')).toEqual([16, 32, FINAL]);
  await waitFor(async () => logged(workers, /: merged round/).length >= 3, 10_000, 'the merges to be logged');
  expect(logged(workers, /: merged round/)).toHaveLength(3);
  expect(logged(workers, /already/)).toEqual([]);
  // Both processes trained slices.
  for (const worker of workers)
    expect(logged([worker], /slice \d of 2 of round .* committed/).length).toBeGreaterThan(0);

  // Each slice trained its lane of the round's steps; the slices' folders went with their merge.
  const lane = async (fromStep: number, slice: number) =>
    new TextDecoder()
      .decode(
        await stack.store.getBytes(
          metricsKey('reference', `round-${String(fromStep).padStart(9, '0')}-slice-${slice}-of-2`),
        ),
      )
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { step: number }).step);
  expect(await lane(16, 0)).toEqual([16, 18, 20, 22, 24, 26, 28, 30]);
  expect(await lane(16, 1)).toEqual([17, 19, 21, 23, 25, 27, 29, 31]);
  for (const fromStep of [0, 16, 32])
    expect(await stack.store.list(roundPrefix('reference', fromStep))).toEqual([]);

  const view = await stack.http<{ parallel: unknown }>('GET', '/runs/reference');
  expect(view.body.parallel).toEqual({ rounds: true, slices: 2, round: null });
  await Promise.all(workers.map((worker) => worker.stop()));
});

test('SIGKILL mid-slice: the slice is retried from the round start and the final bytes equal the undisturbed run', async () => {
  const workers = await startWorkers('c', 'd');
  await stack.createRun('killed-slice', ROUNDS);
  const jobId = sliceJobId('killed-slice', 0, 16, 2, 1);
  const step = await progressAtLeast(events, jobId, 19);
  const victim = holderOf(workers, jobId);
  expect(victim).toBeDefined();
  victim!.signal('SIGKILL');
  expect(step).toBeLessThan(31);
  await victim!.exited;
  const [replacement] = await startWorkers('e');

  await stack.waitForRun(
    'killed-slice',
    (r) => r.status === 'completed',
    120_000,
    'completion after the kill',
  );
  expect(await listCommitted(stack.store, 'killed-slice')).toEqual([16, 32, FINAL]);
  await expectSameFinalBytes('killed-slice');
  await Promise.all([...workers, replacement].map((worker) => worker.stop()));
});

test('SIGKILL of every worker as a merge starts: the merge reruns or stands, the final bytes are unchanged', async () => {
  const workers = await startWorkers('f', 'g');
  await stack.createRun('killed-merge', ROUNDS);
  const mergeId = roundJobId('killed-merge', 0, 16);
  await new Promise<void>((resolve) => {
    const onActive = ({ jobId }: { jobId: string }) => {
      if (jobId !== mergeId) return;
      events.off('active', onActive);
      for (const worker of workers) worker.signal('SIGKILL');
      resolve();
    };
    events.on('active', onActive);
  });
  await Promise.all(workers.map((worker) => worker.exited));
  const replacements = await startWorkers('h', 'i');

  await stack.waitForRun(
    'killed-merge',
    (r) => r.status === 'completed',
    120_000,
    'completion after the kill',
  );
  expect(await listCommitted(stack.store, 'killed-merge')).toEqual([16, 32, FINAL]);
  await expectSameFinalBytes('killed-merge');
  await Promise.all(replacements.map((worker) => worker.stop()));
});

test('FLUSHALL mid-round: reconciliation re-creates the round from S3 and the run completes with the same bytes', async () => {
  const workers = await startWorkers('j', 'k');
  await stack.createRun('wiped-round', ROUNDS);
  await progressAtLeast(events, sliceJobId('wiped-round', 0, 16, 2, 0), 20);
  expect(await stack.redis.flushall()).toBe('OK');

  await stack.waitForRun(
    'wiped-round',
    (r) => r.status === 'completed',
    120_000,
    'completion after the wipe',
  );
  expect(await listCommitted(stack.store, 'wiped-round')).toEqual([16, 32, FINAL]);
  await expectSameFinalBytes('wiped-round');
  await Promise.all(workers.map((worker) => worker.stop()));
});

test('resize 2 → 3 between rounds: the next rounds have three slices; a run in shards cannot be resized', async () => {
  const workers = await startWorkers('l', 'm');
  await stack.createRun('resized', ROUNDS);
  const resized = await stack.http<{ parallel: { slices: number; round: { slices: number } } }>(
    'POST',
    '/runs/resized/resize',
    { slices: 3 },
  );
  expect(resized.status).toBe(200);
  expect(resized.body.parallel).toMatchObject({ slices: 3, round: { slices: 2 } });

  const run = await stack.waitForRun('resized', (r) => r.status === 'completed', 120_000, 'the resized run');
  // Round 1: 2 × 8 steps; round 2: 3 × 8; round 3: the 8 steps left, over 3 slices.
  expect(run.committedSteps).toEqual([16, 40, FINAL]);
  const metrics = await stack.store.list(`runs/resized/metrics/`);
  expect(metrics.filter((key) => key.includes('-of-3')).length).toBe(6);

  await stack.createRun('sequential', { train: { epochs: 1 } });
  const refused = await stack.http<{ message: string }>('POST', '/runs/sequential/resize', { slices: 2 });
  expect(refused.status).toBe(409);
  expect(refused.body.message).toMatch(/sequential shards/);
  const invalid = await stack.http<{ message: string }>('POST', '/runs/resized/resize', { slices: 0 });
  expect(invalid.status).toBe(400);
  await Promise.all(workers.map((worker) => worker.stop()));
});

test('a slice that fails for good fails the run with a message naming it; the merged checkpoints stay', async () => {
  const [worker] = await startWorkers('n');
  await stack.createRun('failing', ROUNDS, 'victim');
  await stack.waitForRun('failing', (r) => r.committedSteps.includes(16), 120_000, 'the first merge');
  worker.signal('SIGKILL');
  await worker.exited;
  // The dataset's training shard is damaged in storage: no retry can read it.
  const shards = (await stack.store.list('datasets/victim/shards/')).filter((key) => key.includes('train-'));
  expect(shards.length).toBeGreaterThan(0);
  await stack.store.putBytes(shards[0], new TextEncoder().encode('not a tar file'));

  const [next] = await startWorkers('o');
  const run = await stack.waitForRun('failing', (r) => r.status === 'failed', 120_000, 'the run to fail');
  expect(run.error).toMatch(
    /slice \d of 2 of round 16\.\.32 \(job failing-g0-round-16-slice-\d-of-2\) failed: shard \S*train-000000\.tar: 14 bytes/,
  );
  expect(await listCommitted(stack.store, 'failing')).toEqual([16]);
  await next.stop();
});
