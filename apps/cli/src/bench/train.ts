import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { resolveRunConfig, resolveModelDims, type PresetName, type RunConfig } from '@dinoq/config';
import {
  DataParallelTrainer,
  defaultBlasThreads,
  installNativeKernels,
  nativeKernelsInstalled,
  runSteps,
  selectBackend,
  trainStepFlops,
  type BackendInfo,
  type LoopStepMetrics,
  type ReplicatedTrainer,
} from '@dinoq/dino';
import {
  AugmentPool,
  parseDataThreads,
  resolveDataThreads,
  trainingBatch,
  type DataThreadSetting,
  type DecodedSplit,
} from '@dinoq/data';
import { argValue, benchSplit, peakRssMiB } from './bench-data';

/**
 * npm run bench:train [-- --preset bench-ref,fmnist-tiny --steps 3 --warmup 1 --replicas 1,2] [--micro N]
 *                     [--blas-threads N]   (per replica; default ⌊cores / replicas⌋)
 *                     [--data-threads auto|N]   (augmentation threads; auto: 1 with one replica, else 0)
 * npm run bench:train -- --long [--replicas 1,2] [--long-steps 1000]
 *
 * Times the full training step (student fwd+bwd on all crops, teacher fwd, loss, AdamW, EMA,
 * center) at batch 64 on real Fashion-MNIST images, after warm-up steps, for each preset ×
 * replica count. Every step's batch goes through the training data pipeline (sampling, decode
 * from memory, multi-crop augmentation) while the previous step trains, as in a real run; the
 * pipeline's CPU time per batch, its share of a core and the time the step waited for it are
 * printed. Next to the achieved GFLOP/s it prints the measured peak of a plain matmul on the
 * same kernels and BLAS threads (per replica). `--long` instead trains a tiny config and prints
 * RSS and tensor counts after 1, 100 and 1000 steps: both must stay flat.
 *
 * Figures wobble on a shared machine: run each variant at least twice and report the range.
 */

const PEAK_SHAPE = { rows: 4160, inner: 192, cols: 768 } as const;

interface Row {
  preset: string;
  backend: string;
  kernels: string;
  replicas: number;
  dataThreads: number;
  imgPerSec: number;
  msPerStep: number;
  gflopPerSec: number;
  peakGflopPerSec: number;
  peakRssMiB: number;
  /** Data-pipeline CPU time per batch over the step time: the cores it needs at this rate. */
  dataCoreShare: number;
  /** Longest wait of a measured step for its batch. */
  dataWaitMs: number;
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

/** Trains `steps` steps on live batches from the data pipeline, with `pool` when it has threads. */
async function trainLive(
  trainer: ReplicatedTrainer,
  split: DecodedSplit,
  steps: number,
  pool: AugmentPool | undefined,
  onStep: (m: LoopStepMetrics, index: number) => void,
): Promise<void> {
  const { config } = trainer;
  const sampling = { seed: config.train.seed, batchSize: config.train.batchSize, pool };
  let index = 0;
  await runSteps({
    trainer,
    toStep: trainer.step + steps,
    batchFor: (step) => trainingBatch(split, config.augment, sampling, step),
    onStep: (m) => onStep(m, index++),
  });
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
  dataThreadSetting: DataThreadSetting,
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
  const dataThreads = resolveDataThreads(dataThreadSetting, replicas);
  const trainer = await DataParallelTrainer.create(config, split.count, { replicas, blasThreads });
  const pool = dataThreads > 0 ? AugmentPool.start(split, dataThreads) : undefined;
  const kernels = trainer.backendInfo?.kernels ?? backend.kernels;
  const measured: LoopStepMetrics[] = [];
  try {
    await trainLive(trainer, split, warmup + steps, pool, (m, i) => {
      if (i >= warmup) measured.push(m);
    });
  } finally {
    await Promise.all([trainer.dispose(), pool?.close()]);
  }
  const times = measured.map((m) => m.stepMs);
  const ms = median(times);
  const gflop = trainStepFlops(config) / 1e9;
  const dataMs = median(measured.map((m) => m.dataMs));
  const waits = measured.map((m) => m.dataWaitMs);
  const row: Row = {
    preset,
    backend: backend.name,
    kernels,
    replicas,
    dataThreads,
    imgPerSec: config.train.batchSize / (ms / 1000),
    msPerStep: ms,
    gflopPerSec: gflop / (ms / 1000),
    peakGflopPerSec: peak,
    peakRssMiB: peakRssMiB(),
    dataCoreShare: dataMs / ms,
    dataWaitMs: Math.max(...waits),
  };
  const threads = kernels === 'native-blas' ? `, ${blasThreads} BLAS thread(s) each` : '';
  console.log(`${describeConfig(preset, config)}; ${replicas} replica(s), ${kernels}${threads}`);
  console.log(
    `  ${row.imgPerSec.toFixed(2)} img/s, ${ms.toFixed(0)} ms/step (median of ${steps}: ${times.map((t) => t.toFixed(0)).join(' ')}),` +
      ` ${gflop.toFixed(1)} GFLOP/step → ${row.gflopPerSec.toFixed(1)} GFLOP/s;` +
      ` matmul peak ${peak.toFixed(1)} GFLOP/s per replica (×${replicas} = ${(peak * replicas).toFixed(1)});` +
      ` peak RSS so far ${row.peakRssMiB.toFixed(0)} MiB (whole process, replicas included),` +
      ` tensors/step ${measured.map((m) => m.numTensors).join(' ')}`,
  );
  console.log(
    `  data pipeline: ${dataThreads === 0 ? 'on the main thread' : `${dataThreads} thread(s)`},` +
      ` ${dataMs.toFixed(0)} ms CPU per batch = ${(100 * row.dataCoreShare).toFixed(1)} % of one core at this step rate;` +
      ` the step waited for its batch ${waits.map((w) => w.toFixed(0)).join('/')} ms`,
  );
  const breakdown = measured.flatMap((m) => {
    const t = m.timings;
    if (!t) return [];
    const compute = t.computeMs.map((c) => c.toFixed(0)).join('/');
    return [
      `compute ${compute}, pack ${t.packMs.toFixed(0)}, sum ${t.sumMs.toFixed(0)}, apply ${t.applyMs.toFixed(0)},` +
        ` exchange ${t.exchangeMs.toFixed(0)}`,
    ];
  });
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
  const dataThreads = resolveDataThreads('auto', replicas);
  const pool = dataThreads > 0 ? AugmentPool.start(split, dataThreads) : undefined;
  const mib = () => (process.memoryUsage().rss / 2 ** 20).toFixed(0);
  console.log(
    `${describeConfig('long run', config)}; ${replicas} replica(s), ${trainer.backendInfo?.kernels ?? backend.kernels},` +
      ` ${dataThreads} augmentation thread(s)`,
  );
  const marked = (s: number) => s === 1 || s === 100 || s % 1000 === 0 || s === totalSteps;
  const t0 = performance.now();
  try {
    await trainLive(trainer, split, totalSteps, pool, (m, i) => {
      const s = i + 1;
      if (marked(s)) {
        console.log(
          `  after ${String(s).padStart(4)} steps: RSS ${mib()} MiB, tensors ${m.numTensors} (replica 0),` +
            ` ${tf.memory().numTensors} (this thread), loss ${m.loss.toFixed(4)},` +
            ` ${((performance.now() - t0) / s).toFixed(1)} ms/step`,
        );
      }
    });
  } finally {
    await Promise.all([trainer.dispose(), pool?.close()]);
  }
}

async function main(): Promise<void> {
  const presets = (argValue('preset', 'bench-ref,fmnist-tiny') as string).split(',') as PresetName[];
  const replicaCounts = (argValue('replicas', '1') as string).split(',').map(Number);
  const steps = Number(argValue('steps', '3'));
  const warmup = Number(argValue('warmup', '1'));
  const micro = argValue('micro');
  const dataThreads = parseDataThreads(argValue('data-threads'), '--data-threads');
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
      rows.push(await throughput(blasThreads, dataThreads, preset, micro, r, backend, split, steps, warmup));
    }
  }
  console.log(
    '\nREADME table rows (paste under <!-- BENCH-TABLE -->, one run per variant, keep the ranges):',
  );
  console.log(
    '| preset | backend | kernels | replicas | data threads | img/s | ms/step | GFLOP/s | matmul peak GFLOP/s (per replica) | peak RSS MiB | data CPU (% of a core) | max data wait ms |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.preset} | ${r.backend} | ${r.kernels} | ${r.replicas} | ${r.dataThreads} | ${r.imgPerSec.toFixed(2)} | ${r.msPerStep.toFixed(0)} |` +
        ` ${r.gflopPerSec.toFixed(1)} | ${r.peakGflopPerSec.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} |` +
        ` ${(100 * r.dataCoreShare).toFixed(1)} | ${r.dataWaitMs.toFixed(0)} |`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
