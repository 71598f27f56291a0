import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { resolveRunConfig, resolveModelDims, type PresetName, type RunConfig } from '@dinoq/config';
import {
  DataParallelTrainer,
  defaultBlasThreads,
  installNativeKernels,
  nativeKernelsInstalled,
  selectBackend,
  trainStepFlops,
  type BackendInfo,
  type CropBatch,
} from '@dinoq/dino';
import { augmentBatch, batchIndices, type DecodedSplit } from '@dinoq/data';
import { argValue, benchSplit, peakRssMiB } from './bench-data';

/**
 * npm run bench:train [-- --preset bench-ref,fmnist-tiny --steps 3 --warmup 1 --micro 32 --replicas 1,2]
 *                     [--blas-threads N]   (per replica; default ⌊cores / replicas⌋)
 * npm run bench:train -- --long [--replicas 1,2] [--long-steps 1000]
 *
 * Times the full training step (student fwd+bwd on all crops, teacher fwd, loss, AdamW, EMA,
 * center) at batch 64 on pre-augmented real Fashion-MNIST batches, after warm-up steps, for each
 * preset × replica count. Next to the achieved GFLOP/s it prints the measured peak of a plain
 * matmul on the same kernels and BLAS threads (per replica). `--long` instead trains a tiny
 * config and prints RSS and tensor counts after 1, 100 and 1000 steps: both must stay flat.
 *
 * Figures wobble on a shared machine: run each variant at least twice and report the range.
 */

const PEAK_SHAPE = { rows: 4160, inner: 192, cols: 768 } as const;

interface Row {
  preset: string;
  backend: string;
  kernels: string;
  replicas: number;
  imgPerSec: number;
  msPerStep: number;
  gflopPerSec: number;
  peakGflopPerSec: number;
  peakRssMiB: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * GFLOP/s of the fc1-shaped product [4160×192]·[192×768] on the active backend with `threads`
 * BLAS threads, median of 5. The left operand is fresh every time so that no packing cache helps.
 */
function matmulPeak(threads: number): number {
  if (nativeKernelsInstalled()) installNativeKernels({ threads });
  const { rows, inner, cols } = PEAK_SHAPE;
  const w = tf.randomUniform([inner, cols]);
  const times: number[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const x = tf.randomUniform([rows, inner]);
      x.dataSync();
      const t0 = performance.now();
      const y = tf.matMul(x, w);
      y.dataSync();
      const ms = performance.now() - t0;
      tf.dispose([x, y]);
      if (i > 0) times.push(ms);
    }
  } finally {
    w.dispose();
    if (nativeKernelsInstalled()) installNativeKernels({ threads: defaultBlasThreads() });
  }
  return (2 * rows * inner * cols) / (median(times) / 1000) / 1e9;
}

async function batchesFor(config: RunConfig, split: DecodedSplit, count: number): Promise<CropBatch[]> {
  const out: CropBatch[] = [];
  for (let s = 0; s < count; s++) {
    const idx = batchIndices(split.count, config.train.batchSize, config.train.seed, s);
    out.push(await augmentBatch(split, idx, config.augment, { seed: config.train.seed, epoch: 0 }));
  }
  return out;
}

function describeConfig(name: string, config: RunConfig): string {
  const dims = resolveModelDims(config.model);
  return [
    `${name}: ViT p${config.model.patchSize} d${dims.embedDim} depth ${dims.depth} h${dims.numHeads}, K ${config.head.outDim},`,
    `2x${config.augment.globalCropSize}px + ${config.augment.localCropsNumber}x${config.augment.localCropSize}px, batch ${config.train.batchSize}`,
    `micro ${config.train.microBatchSize || config.train.batchSize}`,
  ].join(' ');
}

async function throughput(
  blasThreadsArg: number | undefined,
  preset: PresetName,
  micro: string | undefined,
  replicas: number,
  backend: BackendInfo,
  split: DecodedSplit,
  steps: number,
  warmup: number,
): Promise<Row> {
  const config = resolveRunConfig(preset, micro ? { train: { microBatchSize: Number(micro) } } : {});
  const blasThreads = blasThreadsArg ?? Math.max(1, Math.floor(os.availableParallelism() / replicas));
  const peak = matmulPeak(blasThreads);
  const trainer = await DataParallelTrainer.create(config, split.count, { replicas, blasThreads });
  const kernels = trainer.backendInfo?.kernels ?? backend.kernels;
  const batches = await batchesFor(config, split, Math.min(warmup + steps, 4));
  const times: number[] = [];
  const tensors: number[] = [];
  const breakdown: string[] = [];
  try {
    for (let s = 0; s < warmup + steps; s++) {
      const m = await trainer.trainStep(batches[s % batches.length]);
      if (s >= warmup) {
        times.push(m.stepMs);
        tensors.push(m.numTensors);
        const t = m.timings;
        if (t) {
          const compute = t.computeMs.map((c) => c.toFixed(0)).join('/');
          breakdown.push(
            `compute ${compute}, apply ${t.applyMs.toFixed(0)}, exchange ${t.exchangeMs.toFixed(0)}`,
          );
        }
      }
    }
  } finally {
    await trainer.dispose();
  }
  const ms = median(times);
  const gflop = trainStepFlops(config) / 1e9;
  const row: Row = {
    preset,
    backend: backend.name,
    kernels,
    replicas,
    imgPerSec: config.train.batchSize / (ms / 1000),
    msPerStep: ms,
    gflopPerSec: gflop / (ms / 1000),
    peakGflopPerSec: peak,
    peakRssMiB: peakRssMiB(),
  };
  const threads = kernels === 'native-blas' ? `, ${blasThreads} BLAS thread(s) each` : '';
  console.log(`${describeConfig(preset, config)}; ${replicas} replica(s), ${kernels}${threads}`);
  console.log(
    `  ${row.imgPerSec.toFixed(2)} img/s, ${ms.toFixed(0)} ms/step (median of ${steps}: ${times.map((t) => t.toFixed(0)).join(' ')}),` +
      ` ${gflop.toFixed(1)} GFLOP/step → ${row.gflopPerSec.toFixed(1)} GFLOP/s;` +
      ` matmul peak ${peak.toFixed(1)} GFLOP/s per replica (×${replicas} = ${(peak * replicas).toFixed(1)});` +
      ` peak RSS so far ${row.peakRssMiB.toFixed(0)} MiB (whole process, replicas included), tensors/step ${tensors.join(' ')}`,
  );
  if (breakdown.length > 0) console.log(`  per step (ms): ${breakdown.join('; ')}`);
  return row;
}

/** A config small enough for 1000 steps in about a minute; only memory is of interest. */
function longRunConfig(): RunConfig {
  return resolveRunConfig('fmnist-tiny', {
    model: { embedDim: 32, depth: 2, numHeads: 2 },
    head: { outDim: 256, hiddenDim: 64, bottleneckDim: 16 },
    augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
    train: { batchSize: 16, microBatchSize: 0 },
  });
}

async function longRun(
  replicas: number,
  backend: BackendInfo,
  split: DecodedSplit,
  totalSteps: number,
): Promise<void> {
  const config = longRunConfig();
  const trainer = await DataParallelTrainer.create(config, split.count, { replicas });
  const batches = await batchesFor(config, split, 4);
  const mib = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0);
  console.log(
    `${describeConfig('long run', config)}; ${replicas} replica(s), ${trainer.backendInfo?.kernels ?? backend.kernels}`,
  );
  const marked = (s: number) => s === 1 || s === 100 || s % 1000 === 0 || s === totalSteps;
  const t0 = performance.now();
  try {
    for (let s = 1; s <= totalSteps; s++) {
      const m = await trainer.trainStep(batches[s % batches.length]);
      if (marked(s)) {
        console.log(
          `  after ${String(s).padStart(4)} steps: RSS ${mib()} MiB, tensors ${m.numTensors} (replica 0),` +
            ` ${tf.memory().numTensors} (this thread), loss ${m.loss.toFixed(4)},` +
            ` ${((performance.now() - t0) / s).toFixed(1)} ms/step`,
        );
      }
    }
  } finally {
    await trainer.dispose();
  }
}

async function main(): Promise<void> {
  const presets = (argValue('preset', 'bench-ref,fmnist-tiny') as string).split(',') as PresetName[];
  const replicaCounts = (argValue('replicas', '1') as string).split(',').map(Number);
  const steps = Number(argValue('steps', '3'));
  const warmup = Number(argValue('warmup', '1'));
  const micro = argValue('micro');
  const blasThreadsRaw = argValue('blas-threads');
  const blasThreads = blasThreadsRaw === undefined ? undefined : Number(blasThreadsRaw);
  if (blasThreads !== undefined && !(Number.isInteger(blasThreads) && blasThreads > 0)) {
    throw new Error(`--blas-threads must be a positive integer, got ${blasThreadsRaw}`);
  }
  for (const r of replicaCounts) {
    if (!Number.isInteger(r) || r < 1) throw new Error(`--replicas must list positive integers, got ${r}`);
  }
  const backend = await selectBackend();
  const split = await benchSplit('train', 512);
  console.log(`backend ${backend.name} (${backend.kernels}): ${backend.detail}`);
  console.log(`${split.count} real images loaded; ${os.availableParallelism()} cores`);

  if (process.argv.includes('--long')) {
    const total = Number(argValue('long-steps', '1000'));
    for (const r of replicaCounts) await longRun(r, backend, split, total);
    return;
  }

  const rows: Row[] = [];
  for (const preset of presets) {
    for (const r of replicaCounts) {
      rows.push(await throughput(blasThreads, preset, micro, r, backend, split, steps, warmup));
    }
  }
  console.log(
    '\nREADME table rows (paste under <!-- BENCH-TABLE -->, one run per variant, keep the ranges):',
  );
  console.log(
    '| preset | backend | kernels | replicas | img/s | ms/step | GFLOP/s | matmul peak GFLOP/s (per replica) | peak RSS MiB |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.preset} | ${r.backend} | ${r.kernels} | ${r.replicas} | ${r.imgPerSec.toFixed(2)} | ${r.msPerStep.toFixed(0)} |` +
        ` ${r.gflopPerSec.toFixed(1)} | ${r.peakGflopPerSec.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} |`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
