import '@tensorflow/tfjs-backend-wasm';
import { parseRunConfig, type RunConfig } from '@dinoq/config';
import { selectBackend } from '../src/backend/select-backend';
import { installNativeKernels, nativeKernelsInstalled } from '../src/backend/native-kernels';
import { decodeCheckpoint } from '../src/checkpoint';
import { paramShapes } from '../src/init';
import type { CropBatch } from '../src/step-types';
import type { StepMetrics } from '../src/trainer';
import {
  DataParallelTrainer,
  assignMicroBatches,
  type ReplicatedTrainer,
} from '../src/parallel/parallel-trainer';
import { microBatches } from '../src/grad-step';
import { rngFor, uniform } from '../src/rng';

// The replicas run in worker threads started from the TypeScript sources (spawn-replica.ts).

jest.mock(
  '@tensorflow/tfjs-node-gpu',
  () => {
    throw new Error("Cannot find module '@tensorflow/tfjs-node-gpu'");
  },
  { virtual: true },
);
jest.mock(
  '@tensorflow/tfjs-node',
  () => {
    throw new Error("Cannot find module '@tensorflow/tfjs-node'");
  },
  { virtual: true },
);

const DATASET = 32;

function tinyConfig(): RunConfig {
  return parseRunConfig({
    model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 1, numHeads: 2, dropPathRate: 0.2 },
    head: { outDim: 64, hiddenDim: 32, bottleneckDim: 8, nlayers: 3 },
    optim: { lr: 0.01, warmupEpochs: 0, freezeLastLayer: 0, momentumTeacher: 0.9 },
    augment: { globalCropSize: 8, localCropSize: 4, localCropsNumber: 2 },
    train: { batchSize: 8, microBatchSize: 2, epochs: 2, seed: 7 },
  });
}

function batchFor(config: RunConfig, step: number): CropBatch {
  const a = config.augment;
  const sizes = [
    a.globalCropSize,
    a.globalCropSize,
    ...new Array<number>(a.localCropsNumber).fill(a.localCropSize),
  ];
  const B = config.train.batchSize;
  const views = sizes.map((s, v) => uniform(rngFor(11, 'parallel-test', step, v), B * s * s * 3, -1, 1));
  return { views, sizes, batch: B, channels: 3 };
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
  }
  return worst;
}

describe('assignMicroBatches', () => {
  it('deals whole micro-batches out in contiguous runs, keeping their global indices', () => {
    expect(assignMicroBatches(8, 2, 2)).toEqual([
      {
        start: 0,
        rows: 4,
        micros: [
          { start: 0, rows: 2, index: 0 },
          { start: 2, rows: 2, index: 1 },
        ],
      },
      {
        start: 4,
        rows: 4,
        micros: [
          { start: 0, rows: 2, index: 2 },
          { start: 2, rows: 2, index: 3 },
        ],
      },
    ]);
    expect(assignMicroBatches(64, 32, 2).map((p) => [p.start, p.rows])).toEqual([
      [0, 32],
      [32, 32],
    ]);
    // Fewer micro-batches than replicas: they are shrunk so that every replica gets rows.
    expect(assignMicroBatches(10, 0, 3).map((p) => p.rows)).toEqual([4, 4, 2]);
    expect(assignMicroBatches(7, 2, 3).map((p) => p.rows)).toEqual([2, 2, 3]);
    expect(() => assignMicroBatches(4, 0, 5)).toThrow(/replicas \(5\) exceed the batch size/);
    expect(microBatches(5, 2).map((m) => m.rows)).toEqual([2, 2, 1]);
  });
});

describe('DataParallelTrainer', () => {
  const config = tinyConfig();
  const steps = [0, 1, 2].map((s) => batchFor(config, s));
  let single: ReplicatedTrainer;
  let pair: ReplicatedTrainer;
  const singleMetrics: StepMetrics[] = [];
  const pairMetrics: StepMetrics[] = [];

  beforeAll(async () => {
    await selectBackend('wasm');
    // Same BLAS threading as in the replicas, so that matmuls are computed the same way.
    if (nativeKernelsInstalled()) installNativeKernels({ threads: 1 });
    single = await DataParallelTrainer.create(config, DATASET, { replicas: 1 });
    pair = await DataParallelTrainer.create(config, DATASET, {
      replicas: 2,
      backend: 'wasm',
      blasThreads: 1,
    });
    for (const batch of steps) {
      singleMetrics.push(await single.trainStep(batch));
      pairMetrics.push(await pair.trainStep(batch));
    }
  }, 120_000);

  afterAll(async () => {
    await single?.dispose();
    await pair?.dispose();
  });

  it('runs in worker threads on the same backend as this thread', () => {
    expect(single.replicas).toBe(1);
    expect(pair.replicas).toBe(2);
    expect(pair.backendInfo?.name).toBe('wasm');
    expect(pair.step).toBe(3);
    expect(pair.epoch).toBe(0);
    expect(pair.itersPerEpoch).toBe(single.itersPerEpoch);
  });

  it('gives the losses and parameters of one trainer', async () => {
    pairMetrics.forEach((m, i) => {
      const s = singleMetrics[i];
      expect(m.step).toBe(s.step);
      expect(m.lr).toBe(s.lr);
      expect(Math.abs(m.loss - s.loss)).toBeLessThan(1e-5);
      expect(Math.abs(m.teacherEntropy - s.teacherEntropy)).toBeLessThan(1e-5);
      expect(Math.abs(m.klTeacherStudent - s.klTeacherStudent)).toBeLessThan(1e-5);
      expect(Math.abs(m.maxGradNorm - s.maxGradNorm)).toBeLessThan(1e-4 * Math.max(1, s.maxGradNorm));
    });
    // The loss moves between steps, so the comparison above is not between constants.
    expect(singleMetrics[0].loss).not.toBeCloseTo(singleMetrics[2].loss, 6);
    const shapes = paramShapes(config);
    const a = decodeCheckpoint(await single.checkpointFiles(), shapes);
    const b = decodeCheckpoint(await pair.checkpointFiles(), shapes);
    expect(b.step).toBe(3);
    expect(maxDiff(a.student, b.student)).toBeLessThan(1e-5);
    expect(maxDiff(a.teacher, b.teacher)).toBeLessThan(1e-5);
    expect(maxDiff(a.optimizer.moments, b.optimizer.moments)).toBeLessThan(1e-5);
    expect(maxDiff(new Map([['c', a.center]]), new Map([['c', b.center]]))).toBeLessThan(1e-5);
    expect(b.optimizer.stepCounts).toEqual(a.optimizer.stepCounts);
  });

  it('keeps the replicas bit-identical', async () => {
    const sums = await pair.replicaChecksums();
    expect(sums).toHaveLength(2);
    expect(sums[0]).toBe(sums[1]);
    expect(sums[0]).toMatch(/@3$/);
  });

  it('leaks no tensors in the replicas', () => {
    // Step 0 creates the optimizer moments; after that the count must not move.
    expect(pairMetrics[2].numTensors).toBe(pairMetrics[1].numTensors);
    expect(singleMetrics[2].numTensors).toBe(singleMetrics[1].numTensors);
  });

  it('resumes replicas from a checkpoint to the same state', async () => {
    const files = await pair.checkpointFiles();
    const resumed = await DataParallelTrainer.restore(config, DATASET, files, {
      replicas: 2,
      backend: 'wasm',
      blasThreads: 1,
    });
    try {
      expect(resumed.step).toBe(3);
      const [x, y] = await resumed.replicaChecksums();
      expect(x).toBe(y);
      expect(x).toBe((await pair.replicaChecksums())[0]);
    } finally {
      await resumed.dispose();
    }
  }, 60_000);

  it('rejects bad batches without touching the replicas, naming the replica that failed', async () => {
    const before = await pair.replicaChecksums();
    await expect(pair.trainStep({ ...steps[0], batch: 4 })).rejects.toThrow(/batch has 4 images/);
    // Views one image short: the second replica's share is short and its forward pass fails.
    const short = { ...steps[0], views: steps[0].views.map((v) => v.subarray(0, (v.length / 8) * 7)) };
    await expect(pair.trainStep(short)).rejects.toThrow(/^replica 1: view 0 has 3 images/);
    expect(await pair.replicaChecksums()).toEqual(before);
    expect(pair.step).toBe(3);
    // The failed replica freed what it had computed: the next step has the usual tensor count.
    const next = await pair.trainStep(steps[1]);
    expect(next.numTensors).toBe(pairMetrics[2].numTensors);
    const [x, y] = await pair.replicaChecksums();
    expect(x).toBe(y);
  }, 60_000);
});
