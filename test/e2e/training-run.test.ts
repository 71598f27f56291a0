/**
 * End to end over HTTP: the API (in this process) writes run records and queues jobs, a worker
 * (a separate `node` process built from dist) imports real Fashion-MNIST images, trains shards,
 * commits checkpoints in a real s3rver and evaluates them, over a real Redis.
 */
import { Job } from 'bullmq';
import { QueueName, shardJobId } from '@dinoq/jobs';
import { encodePng } from '@dinoq/data';
import { parseRunConfig } from '@dinoq/config';
import { disposeParams } from '@dinoq/dino';
import { importBackbone } from '@dinoq/eval';
import {
  attentionFileKey,
  datasetManifestKey,
  evalKey,
  backboneExportKey,
  featuresKey,
  listCommitted,
  metricsKey,
  readCheckpointCommit,
} from '@dinoq/storage';
import { buildWorker } from './helpers/build';
import { startStack, waitFor, type E2EStack, progressAtLeast } from './helpers/stack';
import type { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(120_000);

let stack: E2EStack;
let worker: WorkerProcess;

beforeAll(async () => {
  buildWorker();
  stack = await startStack();
  // Two data-parallel replicas whatever the core count, so shards train and resume through them.
  worker = stack.startWorker('w1', { DINOQ_TRAIN_REPLICAS: '2' });
  await worker.ready();
  await stack.importDataset('fmnist', 32);
});

afterAll(async () => {
  await stack?.close();
});

async function metricLines(runId: string, shard: number): Promise<Record<string, number | string>[]> {
  const text = new TextDecoder().decode(await stack.store.getBytes(metricsKey(runId, shard)));
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, number | string>);
}

test('the import job wrote a dataset the API can see', async () => {
  const answer = await stack.http<{ splits: Record<string, { count: number }>; classes: string[] }>(
    'GET',
    '/datasets/fmnist',
  );
  expect(answer.status).toBe(200);
  expect(answer.body.splits).toEqual({ train: { count: 32 }, test: { count: 32 } });
  expect(answer.body.classes).toHaveLength(10);
});

test('the worker announces its backend, cores and parallelism settings on /health', async () => {
  const health = await waitFor(
    async () => {
      const answer = await stack.http<{ workers: { list: Record<string, unknown>[] } }>('GET', '/health');
      return answer.body.workers.list.find((w) => w.trainReplicas === '2') ?? null;
    },
    10_000,
    'the worker heartbeat',
  );
  expect(health).toMatchObject({
    backend: 'wasm',
    deviceClass: 'cpu',
    trainReplicas: '2',
    dataThreads: 'auto',
  });
  expect(health.cores).toBeGreaterThanOrEqual(1);
});

test('a two-shard run completes: both checkpoints committed, every step has a metrics line', async () => {
  const created = await stack.createRun('two-shards');
  expect(created).toMatchObject({ status: 'queued', totalSteps: 4, stepsPerShard: 2, numShards: 2 });

  const run = await stack.waitForRun('two-shards', (r) => r.status === 'completed', 60_000, 'completion');
  expect(run).toMatchObject({ lastCommittedStep: 4, committedSteps: [2, 4], backend: 'wasm', error: null });
  expect(run.workerId).toMatch(/-\d+-[0-9a-f]{6}$/);
  expect(await listCommitted(stack.store, 'two-shards')).toEqual([2, 4]);

  const lines = [...(await metricLines('two-shards', 0)), ...(await metricLines('two-shards', 1))];
  expect(lines.map((line) => line.step)).toEqual([0, 1, 2, 3]);
  for (const line of lines) {
    for (const field of [
      'loss',
      'lr',
      'weightDecay',
      'momentum',
      'teacherTemp',
      'teacherEntropy',
      'klTeacherStudent',
      'imagesPerSecond',
      'stepMs',
      'epoch',
      'numTensors',
      'dataWaitMs',
      'dataMs',
    ]) {
      expect(typeof line[field]).toBe('number');
      expect(Number.isFinite(line[field] as number)).toBe(true);
    }
    expect(line.backend).toBe('wasm');
    expect(line.replicas).toBe(2);
    // Replicas leave the main thread idle during the step, so augmentation runs there.
    expect(line.dataThreads).toBe(0);
  }
  expect(run.latestMetrics).toMatchObject({ step: 3, loss: lines[3].loss });

  const commit = await readCheckpointCommit(stack.store, 'two-shards', 4);
  expect(Object.keys(commit?.files ?? {}).sort()).toEqual([
    'optimizer.safetensors',
    'state.json',
    'student.safetensors',
    'teacher.safetensors',
  ]);

  // Both shard jobs completed under their deterministic ids; shard 1 was queued by the worker.
  const queue = stack.producer.queue(QueueName.TrainCpu);
  for (const shard of [0, 1]) {
    // The run record is written inside the job; BullMQ marks the job once it has returned.
    const state = await waitFor(
      async () => {
        const s = await (await Job.fromId(queue, shardJobId('two-shards', 0, shard)))?.getState();
        return s === 'completed' ? s : null;
      },
      10_000,
      `shard ${shard} to be marked completed`,
    );
    expect(state).toBe('completed');
  }
  const finalJob = await Job.fromId(queue, shardJobId('two-shards', 0, 1));
  expect(finalJob?.returnvalue).toMatchObject({
    outcome: 'trained',
    committedStep: 4,
    status: 'completed',
    next: null,
  });

  const view = await stack.http<Record<string, unknown>>('GET', '/runs/two-shards');
  expect(view.body).toMatchObject({ status: 'completed' });

  // The finished run's teacher backbone is exported under the reference names and loads back.
  const exported = await stack.store.getBytes(backboneExportKey('two-shards'));
  const backbone = importBackbone(exported, parseRunConfig(run.config));
  expect(backbone.get('backbone.cls_token')?.shape).toEqual([1, 1, 16]);
  disposeParams(backbone);
});

test('an evaluate job writes a k-NN report for the newest checkpoint', async () => {
  await stack.waitForRun('two-shards', (r) => r.status === 'completed', 60_000);
  const answer = await stack.http<{ evalId: string }>('POST', '/runs/two-shards/evaluations', {
    kinds: ['knn'],
    knn: { ks: [1, 5, 20] },
  });
  expect(answer.status).toBe(202);
  const key = evalKey('two-shards', answer.body.evalId);
  const report = await waitFor(
    () => stack.store.getJson<Record<string, unknown>>(key),
    60_000,
    'the k-NN report',
  );
  expect(report).toMatchObject({
    evalId: answer.body.evalId,
    runId: 'two-shards',
    step: 4,
    kinds: ['knn'],
    network: 'teacher',
    backend: 'wasm',
    scheduled: false,
    knnSettings: { ks: [1, 5, 20], trainImages: 32, testImages: 32 },
  });
  const knn = report.knn as { k: number; top1: number; top5: number }[];
  expect(knn.map((score) => score.k)).toEqual([1, 5, 20]);
  // Its features are cached per checkpoint and split for later evaluations.
  expect(await stack.store.exists(featuresKey('two-shards', 4, 'train'))).toBe(true);
  expect(await stack.store.exists(featuresKey('two-shards', 4, 'test'))).toBe(true);
  for (const score of knn) {
    expect(score.top1).toBeGreaterThanOrEqual(0);
    expect(score.top1).toBeLessThanOrEqual(score.top5);
    expect(score.top5).toBeLessThanOrEqual(100);
  }
});

test('an evaluate-sweep job queues one evaluation per new checkpoint, once', async () => {
  const events = await stack.events(QueueName.EvaluateCpu);
  const sweep = {
    scheduleId: 'sweep-e2e',
    runId: 'two-shards',
    kinds: ['knn' as const],
    knn: { ks: [5], temperature: 0.07 },
  };
  const first = await stack.producer.add(QueueName.EvaluateCpu, 'evaluate-sweep', sweep);
  const firstResult = await first.waitUntilFinished(events, 30_000);
  expect(firstResult).toMatchObject({
    enqueued: [{ runId: 'two-shards', step: 4, jobId: 'two-shards-sweep-e2e-s4' }],
  });

  const evaluation = await Job.fromId(stack.producer.queue(QueueName.EvaluateCpu), 'two-shards-sweep-e2e-s4');
  expect(evaluation?.data).toMatchObject({
    runId: 'two-shards',
    step: 4,
    scheduled: true,
    evalId: 'sweep-e2e-s4',
  });
  const report = await waitFor(
    () => stack.store.getJson<Record<string, unknown>>(evalKey('two-shards', 'sweep-e2e-s4')),
    60_000,
    'the scheduled report',
  );
  expect(report).toMatchObject({ step: 4, scheduled: true });

  // Firing again with no new checkpoint queues nothing.
  const second = await stack.producer.add(QueueName.EvaluateCpu, 'evaluate-sweep', sweep);
  expect(await second.waitUntilFinished(events, 30_000)).toMatchObject({
    enqueued: [],
    unchanged: ['two-shards'],
  });
});

test('a linear-probe evaluation trains a classifier on frozen features and reports its curve', async () => {
  const answer = await stack.http<{ evalId: string }>('POST', '/runs/two-shards/evaluations', {
    kinds: ['knn', 'linear'],
    step: 2,
    knn: { ks: [5] },
    linear: { epochs: 3, batchSize: 8, lastBlocks: 1 },
  });
  expect(answer.status).toBe(202);
  const report = await waitFor(
    () => stack.store.getJson<Record<string, unknown>>(evalKey('two-shards', answer.body.evalId)),
    60_000,
    'the linear-probe report',
  );
  expect(report).toMatchObject({ step: 2, kinds: ['knn', 'linear'] });
  const linear = report.linear as {
    top1: number;
    top5: number;
    curve: { epoch: number }[];
    trainImages: number;
  };
  expect(linear.curve.map((entry) => entry.epoch)).toEqual([0, 1, 2]);
  expect(linear.top1).toBeGreaterThanOrEqual(0);
  expect(linear.top1).toBeLessThanOrEqual(linear.top5);
  expect(linear.trainImages).toBe(32);
  expect(report.knn).toHaveLength(1);
});

test('an attention job writes the maps of dataset images and of uploads, index.json last', async () => {
  const fromDataset = await stack.http<{ exportId: string }>('POST', '/runs/two-shards/attention', {
    images: { split: 'test', indices: [0, 3] },
  });
  expect(fromDataset.status).toBe(202);
  const png = encodePng(
    new Uint8Array(40 * 30 * 3).map((_, i) => (i * 7) % 256),
    40,
    30,
    3,
  );
  const fromUpload = await stack.http<{ exportId: string }>('POST', '/runs/two-shards/attention', {
    images: { upload: [Buffer.from(png).toString('base64')] },
    threshold: 0.5,
  });
  expect(fromUpload.status).toBe(202);

  for (const [exportId, images] of [
    [fromDataset.body.exportId, 2],
    [fromUpload.body.exportId, 1],
  ] as const) {
    const index = await waitFor(
      () =>
        stack.store.getJson<Record<string, unknown>>(attentionFileKey('two-shards', exportId, 'index.json')),
      60_000,
      `attention export ${exportId}`,
    );
    expect(index).toMatchObject({ runId: 'two-shards', exportId, step: 4, heads: 2, patchSize: 4 });
    const entries = index.images as { files: { overlay: string; heads: string[] } }[];
    expect(entries).toHaveLength(images);
    for (const entry of entries) {
      expect(entry.files.heads).toHaveLength(2);
      const overlay = await stack.store.getBytes(
        attentionFileKey('two-shards', exportId, entry.files.overlay),
      );
      expect(Buffer.from(overlay.subarray(1, 4)).toString('latin1')).toBe('PNG');
    }
  }
  const view = await stack.http('GET', `/runs/two-shards/attention/${fromUpload.body.exportId}`);
  expect(view.body).toMatchObject({ status: 'completed', index: { threshold: 0.5 } });
});

test('an image-folder import reads class folders from the bucket', async () => {
  for (const [cls, shade] of [
    ['cats', 40],
    ['dogs', 200],
  ] as const) {
    for (let i = 0; i < 3; i++) {
      const pixels = new Uint8Array(12 * 12).fill(shade + i);
      await stack.store.putBytes(`uploads/pets/${cls}/${i}.png`, encodePng(pixels, 12, 12, 1));
    }
  }
  const answer = await stack.http('POST', '/datasets/import', {
    name: 'pets',
    source: { kind: 'image-folder', prefix: 'uploads/pets' },
  });
  expect(answer.status).toBe(202);
  await waitFor(() => stack.store.exists(datasetManifestKey('pets')), 60_000, 'the pets dataset');
  const dataset = await stack.http('GET', '/datasets/pets');
  expect(dataset.body).toMatchObject({ classes: ['cats', 'dogs'], splits: { train: { count: 6 } } });
});

test('a worker asked to be a GPU worker on a CPU backend refuses to start', async () => {
  const gpu = stack.startWorker('gpu', { DINOQ_DEVICE_CLASS: 'gpu' });
  const exit = await gpu.exited;
  expect(exit.code).toBe(1);
  const fatal = gpu.lines.find((line) => line.msg === 'worker could not start');
  expect(String(fatal?.err)).toMatch(/DINOQ_DEVICE_CLASS=gpu but the backend is not a GPU one/);
});

test('cancel stops after the current shard; resume continues from the last commit to completion', async () => {
  const events = await stack.events(QueueName.TrainCpu);
  // 24 epochs of 4 steps in two shards of 48: long enough that the cancel lands mid-shard even
  // with native matmul kernels.
  await stack.createRun('cancel-resume', { train: { epochs: 24, stepsPerShard: 48 } });
  await progressAtLeast(events, shardJobId('cancel-resume', 0, 0), 1);
  const cancel = await stack.http('POST', '/runs/cancel-resume/cancel');
  expect(cancel.status).toBe(200);
  expect(cancel.body).toMatchObject({ stopsAfterCurrentShard: true });

  const cancelled = await stack.waitForRun(
    'cancel-resume',
    (r) => r.status === 'cancelled',
    60_000,
    'cancellation',
  );
  expect(cancelled).toMatchObject({ lastCommittedStep: 48, committedSteps: [48], cancelRequested: true });
  // No next shard was queued.
  expect(
    await Job.fromId(stack.producer.queue(QueueName.TrainCpu), shardJobId('cancel-resume', 0, 1)),
  ).toBeUndefined();
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(await listCommitted(stack.store, 'cancel-resume')).toEqual([48]);

  const resume = await stack.http('POST', '/runs/cancel-resume/resume');
  expect(resume.status).toBe(202);
  expect(resume.body).toMatchObject({ job: { id: shardJobId('cancel-resume', 1, 1) } });
  const done = await stack.waitForRun('cancel-resume', (r) => r.status === 'completed', 60_000, 'completion');
  expect(done).toMatchObject({
    generation: 1,
    lastCommittedStep: 96,
    committedSteps: [48, 96],
    cancelRequested: false,
  });
  const resumed = await metricLines('cancel-resume', 1);
  expect(resumed.map((line) => line.step)).toEqual(Array.from({ length: 48 }, (_, i) => 48 + i));
  expect(worker.running).toBe(true);
});
