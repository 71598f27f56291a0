import { randomBytes } from 'node:crypto';
import { announceWorker, withdrawWorker, type WorkerAnnouncement } from '@dinoq/jobs';
import { commitCheckpoint, datasetManifestKey } from '@dinoq/storage';
import { readApiEnv } from '../src/api-env';
import { AUTH, TINY_RUN, seedDataset, startTestApi, type TestApi } from './api-fixture';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The first config: ViT-B/16 on 2 + 32 crops of 1024 px, K = 262,144, batch 8,192. */
const HUGE_CROPS = {
  model: { arch: 'vit_base', patchSize: 16 },
  head: { outDim: 262_144 },
  augment: { globalCropSize: 1024, localCropSize: 1024, localCropsNumber: 32 },
  train: { batchSize: 8192 },
};
/** The second config: dim 4,096, depth 48, patch 1. */
const HUGE_MODEL = { model: { arch: 'custom', embedDim: 4096, depth: 48, numHeads: 32, patchSize: 1 } };

let t: TestApi;
const suffix = randomBytes(4).toString('hex');
const announced: string[] = [];

beforeAll(async () => {
  t = await startTestApi();
  await seedDataset(t.store, 'fmnist');
  await seedDataset(t.store, 'large', 10_000);
});
afterEach(async () => {
  await Promise.all(announced.splice(0).map((workerId) => withdrawWorker(t.redis, workerId)));
});
afterAll(() => t.close());

/** A heartbeat of a worker of this test's deployment (its queue prefix), as a real worker writes it. */
async function announce(name: string, fields: Partial<WorkerAnnouncement>): Promise<string> {
  const workerId = `${name}-${suffix}`;
  const now = new Date().toISOString();
  await announceWorker(t.redis, {
    workerId,
    hostname: 'test-host',
    pid: 1,
    deviceClass: 'cpu',
    backend: 'wasm',
    kernels: 'wasm-fast',
    cores: 2,
    trainReplicas: 'auto',
    dataThreads: 'auto',
    queues: ['train-cpu', 'evaluate-cpu', 'attention', 'import'],
    startedAt: now,
    lastSeen: now,
    currentJob: null,
    queuePrefix: t.prefix,
    ...fields,
  });
  announced.push(workerId);
  return workerId;
}

function submit(runId: string, body: Record<string, unknown>) {
  return t.http
    .post('/runs')
    .set(AUTH)
    .send({ dataset: 'fmnist', runId, ...body });
}

describe('POST /runs refuses what no worker can train', () => {
  it.each([
    ['huge crops', 'huge-crops', HUGE_CROPS],
    ['huge model', 'huge-model', HUGE_MODEL],
  ])('%s: 400 naming the estimate, the ceilings and what was checked', async (_, runId, config) => {
    const res = await submit(runId, { dataset: 'large', config });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('invalid run config');
    const reasons: string[] = res.body.reasons;
    expect(reasons).toEqual([
      expect.stringMatching(
        /^step memory: the estimated [\d.]+ (TiB|PiB) \(.* parameters .*\) exceeds DINOQ_MAX_STEP_MEMORY_BYTES \(256\.00 GiB\); lower train\.microBatchSize/,
      ),
      expect.stringMatching(
        /^step work: the estimated [\d,]+ GFLOP per step \([\d,]+ per image × train\.batchSize \d+\) exceeds DINOQ_MAX_STEP_GFLOPS \(1,000,000\)$/,
      ),
      'workers: no worker taking train-cpu jobs is registered, so only DINOQ_MAX_STEP_MEMORY_BYTES was checked',
    ]);
    expect(await t.store.exists(`runs/${runId}/run.json`)).toBe(false);
  });

  it('still admits the tiny preset', async () => {
    const res = await submit('tiny-ok', { preset: 'fmnist-tiny' });
    expect(res.status).toBe(201);
  });

  it('refuses a config a small worker cannot hold, and admits it once a larger one announces', async () => {
    // fmnist-tiny in one pass of 64 images: about 550 MiB per step.
    const small = await announce('small', { stepMemoryBytes: 256 * MiB, memoryBytes: 512 * MiB });
    const refused = await submit('mid-refused', { ...TINY_RUN });
    expect(refused.status).toBe(400);
    expect(refused.body.reasons).toEqual([
      expect.stringMatching(
        new RegExp(
          `^step memory: the estimated 549\\.74 MiB \\(2,649,344 parameters .*\\) exceeds the 256\\.00 MiB for one step that the largest registered worker announces \\(${small}, cpu\\)`,
        ),
      ),
    ]);

    // Micro-batches of 8 hold an eighth of the activations: the same worker can take it.
    const micro = await submit('mid-micro', { ...TINY_RUN, config: { train: { microBatchSize: 8 } } });
    expect(micro.status).toBe(201);

    await announce('large', { stepMemoryBytes: 4 * GiB, memoryBytes: 24 * GiB });
    const admitted = await submit('mid-admitted', { ...TINY_RUN });
    expect(admitted.status).toBe(201);
  });

  it('judges only workers of this deployment that take the run queue, and skips unknown capacity', async () => {
    await announce('other-prefix', { stepMemoryBytes: MiB, queuePrefix: `${t.prefix}-other` });
    expect((await submit('other-prefix-run', { ...TINY_RUN, device: 'cpu' })).status).toBe(201);

    await announce('cpu-only', { stepMemoryBytes: MiB });
    expect((await submit('cpu-refused', { ...TINY_RUN, device: 'cpu' })).status).toBe(400);
    // A GPU run goes to train-gpu, which the CPU worker does not take: nothing to judge by.
    expect((await submit('gpu-run', { ...TINY_RUN, device: 'gpu' })).status).toBe(201);

    // A GPU worker that announces no memory might hold anything: only the ceiling applies.
    await announce('gpu-unknown', { deviceClass: 'gpu', queues: ['train-gpu', 'train-cpu'] });
    expect((await submit('cpu-run', { ...TINY_RUN, device: 'cpu' })).status).toBe(201);
    const huge = await submit('huge-unknown', { dataset: 'large', config: HUGE_MODEL, device: 'cpu' });
    expect(huge.status).toBe(400);
    expect(huge.body.reasons.at(-1)).toMatch(
      new RegExp(`^workers: gpu-unknown-${suffix} \\(taking train-cpu jobs\\) announce no memory`),
    );
  });

  it('refuses a channel count the data pipeline never produces', async () => {
    const res = await submit('grey', { ...TINY_RUN, config: { model: { inChans: 1 } } });
    expect(res.status).toBe(400);
    expect(res.body.reasons[0]).toMatch(/^model\.inChans: training crops always have 3 channels/);
  });

  it('refuses a batch larger than the dataset before estimating anything', async () => {
    const res = await submit('too-big-batch', { config: { ...HUGE_MODEL, train: { batchSize: 1024 } } });
    expect(res.status).toBe(400);
    expect(res.body.reasons).toEqual([
      'train.batchSize: 1024 exceeds the 640 training images of dataset "fmnist"',
    ]);
  });
});

describe('step ceilings from the environment', () => {
  it('reads DINOQ_MAX_STEP_MEMORY_BYTES and DINOQ_MAX_STEP_GFLOPS, with defaults', () => {
    expect(readApiEnv({ DINOQ_AUTH: 'off' }).stepLimits).toEqual({
      maxStepMemoryBytes: 256 * GiB,
      maxStepGflops: 1e6,
    });
    expect(
      readApiEnv({
        DINOQ_AUTH: 'off',
        DINOQ_MAX_STEP_MEMORY_BYTES: '1073741824',
        DINOQ_MAX_STEP_GFLOPS: '500',
      }).stepLimits,
    ).toEqual({ maxStepMemoryBytes: GiB, maxStepGflops: 500 });
    expect(() => readApiEnv({ DINOQ_AUTH: 'off', DINOQ_MAX_STEP_GFLOPS: 'lots' })).toThrow(
      /DINOQ_MAX_STEP_GFLOPS must be an integer/,
    );
  });

  it('refuses by the configured ceilings', async () => {
    const strict = await startTestApi({ stepLimits: { maxStepMemoryBytes: 100 * MiB, maxStepGflops: 50 } });
    try {
      await seedDataset(strict.store, 'fmnist');
      const res = await strict.http
        .post('/runs')
        .set(AUTH)
        .send({ ...TINY_RUN, runId: 'strict' });
      expect(res.status).toBe(400);
      expect(res.body.reasons).toEqual([
        expect.stringMatching(/exceeds DINOQ_MAX_STEP_MEMORY_BYTES \(100\.00 MiB\)/),
        expect.stringMatching(
          /^step work: the estimated 83 GFLOP per step \(1\.3 per image × train\.batchSize 64\)/,
        ),
        expect.stringMatching(/^workers: /),
      ]);
    } finally {
      await strict.close();
    }
  });
});

describe('POST /runs/:id/evaluations validates at submit', () => {
  beforeAll(async () => {
    expect((await submit('eval-run', { ...TINY_RUN })).status).toBe(201);
    await commitCheckpoint(t.store, 'eval-run', 50, { 'teacher.safetensors': new Uint8Array([1]) });
  });

  function evaluate(body: Record<string, unknown>) {
    return t.http.post('/runs/eval-run/evaluations').set(AUTH).send(body);
  }

  it('refuses linear.lastBlocks beyond the model depth (4 blocks in fmnist-tiny)', async () => {
    const res = await evaluate({ kinds: ['linear'], linear: { lastBlocks: 6 } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      field: 'linear.lastBlocks',
      message: "linear.lastBlocks 6 exceeds the depth of the run's model (4 blocks); set it to at most 4",
    });
    expect((await evaluate({ kinds: ['linear'], linear: { lastBlocks: 4 } })).status).toBe(202);
    // Options of a kind that is not requested are never used.
    expect((await evaluate({ kinds: ['knn'], linear: { lastBlocks: 6 } })).status).toBe(202);
  });

  it('refuses avgPool with more than one block, listing every problem', async () => {
    const res = await evaluate({ kinds: ['linear'], linear: { lastBlocks: 5, avgPool: true } });
    expect(res.status).toBe(400);
    expect(res.body.field).toBe('linear.lastBlocks');
    expect(res.body.reasons).toEqual([
      "linear.lastBlocks: linear.lastBlocks 5 exceeds the depth of the run's model (4 blocks); set it to at most 4",
      'linear.avgPool: linear.avgPool needs linear.lastBlocks = 1 (as the reference), got 5',
    ]);
  });

  it('refuses when the run dataset has no test split', async () => {
    const manifest = await t.store.getJson<{ splits: Record<string, unknown> }>(datasetManifestKey('fmnist'));
    await t.store.putJson(datasetManifestKey('fmnist'), {
      ...manifest,
      splits: { train: manifest?.splits.train },
    });
    try {
      const res = await evaluate({ kinds: ['knn'] });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ field: 'dataset' });
      expect(res.body.message).toMatch(
        /evaluation needs images in a "test" split; dataset "fmnist" has none \(splits: train\)/,
      );
    } finally {
      await t.store.putJson(datasetManifestKey('fmnist'), manifest);
    }
  });
});
