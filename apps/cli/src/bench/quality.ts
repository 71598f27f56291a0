import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mergeConfig, resolveRunConfig, type RunConfig } from '@dinoq/config';
import {
  DataParallelTrainer,
  disposeParams,
  initDinoParams,
  networkParams,
  resolveReplicas,
  selectBackend,
  type BackendInfo,
  type ParamTensors,
  type ReplicatedTrainer,
} from '@dinoq/dino';
import {
  FsBlobStore,
  importClutteredFashionMnist,
  importFashionMnist,
  loadSplit,
  readManifest,
  type DecodedSplit,
} from '@dinoq/data';
import { extractFeatures, rawPixelFeatures, weightedKnn, type FeatureSet, type KnnScore } from '@dinoq/eval';
import { LocalRun } from '../local-layout';
import { trainLoop } from '../train-loop';
import { parseAssignment, replicaSetting } from '../options';
import { argValue, peakRssMiB, presetArg } from './bench-data';
import { curvePng, type CurveSeries } from './curve-plot';

/**
 * npm run bench:quality [-- --preset fmnist-fast] [--steps n | --minutes m | --epochs n]
 *                       [--train-limit n] [--bank-limit n] [--test-limit n]
 *                       [--curve-points n] [--curve-bank n] [--curve-queries n]
 *                       [--out dir] [--replicas auto|n] [--set path=value ...]
 *                       [--dataset fmnist|cluttered]
 *
 * Imports Fashion-MNIST from the Debian package (or its cluttered variant: each garment pasted
 * off-centre onto a busy 48 px background, the data bench:eval's segmentation scores attention on)
 * and trains a preset, evaluating the teacher's
 * weighted k-NN top-1 (k = 20, T = 0.07) every few steps on a subset (the curve: bank
 * `--curve-bank` train images, `--curve-queries` test images) and at the end on the full protocol
 * (bank: all train images, queries: all test images, unless limited). A random-init network of the
 * same architecture and raw pixels are scored on both protocols. The curve is printed, and written
 * with the figures as curve.json and curve.png in `--out` (default .data/bench/quality-<preset>-<time>).
 *
 * `--minutes m` sizes the run to m minutes of training on this machine: it times a few steps
 * first, then trains the number of steps that fit, so every schedule spans the budget. Time spent
 * evaluating the curve is not counted as training time.
 */

interface CurvePointRecord {
  step: number;
  trainingSeconds: number;
  imagesSeen: number;
  top1: number;
  top5: number;
}

interface Protocol {
  bank: number;
  queries: number;
}

const K = 20;
const numberArg = (name: string) => (argValue(name) === undefined ? undefined : Number(argValue(name)));

/** The `--set path=value` overrides, in order, over `base`. */
function withSetFlags(base: unknown): unknown {
  let overrides = base;
  process.argv.forEach((a, i) => {
    if (a === '--set') overrides = mergeConfig(overrides, parseAssignment(process.argv[i + 1]));
  });
  return overrides;
}

async function createTrainer(config: RunConfig, split: DecodedSplit, backend: BackendInfo) {
  const replicas = resolveReplicas(
    replicaSetting(argValue('replicas', 'auto')!),
    backend,
    config.train.batchSize,
  );
  return DataParallelTrainer.create(config, split.count, { replicas, backend: backend.name });
}

/** Steps that fit `minutes` of training: times `timed` steps after `warm` warm-up steps of a throwaway run. */
async function stepsForMinutes(
  minutes: number,
  config: RunConfig,
  split: DecodedSplit,
  backend: BackendInfo,
): Promise<number> {
  const warm = 3;
  const timed = 12;
  const trainer = await createTrainer(config, split, backend);
  let started = 0;
  try {
    await trainLoop({
      trainer,
      split,
      untilStep: warm + timed,
      onStep: (m) => {
        if (m.step === warm - 1) started = performance.now();
      },
    });
  } finally {
    await trainer.dispose();
  }
  const secondsPerStep = (performance.now() - started) / 1000 / timed;
  const steps = Math.max(1, Math.floor((minutes * 60) / secondsPerStep));
  console.log(
    `calibration: ${secondsPerStep.toFixed(3)} s/step (${(config.train.batchSize / secondsPerStep) | 0} img/s) → ${steps} steps for ${minutes} min`,
  );
  return steps;
}

function knnTop(bank: FeatureSet, queries: FeatureSet, numClasses: number): KnnScore {
  return weightedKnn(bank, queries, { numClasses, ks: [K] })[0];
}

/** Scores of one network on a protocol (the first `bank` train and `queries` test images). */
async function scoreParams(
  params: ParamTensors,
  config: RunConfig,
  data: { train: DecodedSplit; test: DecodedSplit; numClasses: number },
  protocol: Protocol,
): Promise<KnnScore> {
  const bank = await extractFeatures(params, data.train, { config, limit: protocol.bank });
  const queries = await extractFeatures(params, data.test, { config, limit: protocol.queries });
  return knnTop(bank, queries, data.numClasses);
}

async function teacherScore(
  trainer: ReplicatedTrainer,
  data: { train: DecodedSplit; test: DecodedSplit; numClasses: number },
  protocol: Protocol,
): Promise<KnnScore> {
  const teacher = networkParams(trainer.config, await trainer.checkpointFiles(), 'teacher');
  try {
    return await scoreParams(teacher, trainer.config, data, protocol);
  } finally {
    disposeParams(teacher);
  }
}

async function baselines(
  config: RunConfig,
  data: { train: DecodedSplit; test: DecodedSplit; numClasses: number },
  protocol: Protocol,
): Promise<{ randomInit: KnnScore; rawPixels: KnnScore }> {
  const random = initDinoParams(config, config.train.seed);
  try {
    const randomInit = await scoreParams(random, config, data, protocol);
    const rawPixels = knnTop(
      rawPixelFeatures(data.train, protocol.bank),
      rawPixelFeatures(data.test, protocol.queries),
      data.numClasses,
    );
    return { randomInit, rawPixels };
  } finally {
    disposeParams(random);
  }
}

const pct = (v: number) => `${v.toFixed(2)} %`;

function plotCurve(
  file: string,
  title: string,
  curve: CurvePointRecord[],
  base: { randomInit: KnnScore; rawPixels: KnnScore },
): void {
  const last = curve.at(-1)!.trainingSeconds / 60;
  const flat = (y: number) => [
    { x: 0, y },
    { x: last, y },
  ];
  const series: CurveSeries[] = [
    {
      name: 'trained teacher',
      color: '#d62728',
      points: curve.map((p) => ({ x: p.trainingSeconds / 60, y: p.top1 })),
    },
    {
      name: `random init ${pct(base.randomInit.top1)}`,
      color: '#1f77b4',
      dashed: true,
      points: flat(base.randomInit.top1),
    },
    {
      name: `raw pixels ${pct(base.rawPixels.top1)}`,
      color: '#2ca02c',
      dashed: true,
      points: flat(base.rawPixels.top1),
    },
  ];
  fs.writeFileSync(
    file,
    curvePng({ title, xLabel: 'training minutes', yLabel: `k-NN top-1, k ${K} (%)`, series }),
  );
}

function datasetArg(): 'fmnist' | 'cluttered' {
  const dataset = argValue('dataset', 'fmnist')!;
  if (dataset !== 'fmnist' && dataset !== 'cluttered')
    throw new Error(`--dataset takes fmnist or cluttered, got ${dataset}`);
  return dataset;
}

async function main(): Promise<void> {
  const preset = presetArg('preset', 'fmnist-fast');
  const trainLimit = numberArg('train-limit');
  const backend = await selectBackend();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-quality-'));
  const store = new FsBlobStore(root);
  let t0 = Date.now();
  const dataset = datasetArg();
  await (dataset === 'cluttered' ? importClutteredFashionMnist : importFashionMnist)({
    store,
    name: dataset,
  });
  const manifest = await readManifest(store, dataset);
  const train = await loadSplit(store, manifest, 'train');
  const test = await loadSplit(store, manifest, 'test');
  fs.rmSync(root, { recursive: true, force: true });
  const data = { train, test, numClasses: manifest.classes.length };
  console.log(
    `imported + decoded ${dataset === 'cluttered' ? 'cluttered ' : ''}Fashion-MNIST (${train.count} train, ${test.count} test) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
  const trainSet: DecodedSplit = trainLimit ? { ...train, count: Math.min(trainLimit, train.count) } : train;
  const final: Protocol = {
    bank: Math.min(numberArg('bank-limit') ?? train.count, train.count),
    queries: Math.min(numberArg('test-limit') ?? test.count, test.count),
  };
  const curveProtocol: Protocol = {
    bank: Math.min(numberArg('curve-bank') ?? 10_000, final.bank),
    queries: Math.min(numberArg('curve-queries') ?? 2_000, final.queries),
  };

  // Length: --steps, --minutes (timed here) or --epochs; otherwise the preset's own.
  const provisional = resolveRunConfig(preset, withSetFlags({}));
  const minutes = numberArg('minutes');
  const steps =
    numberArg('steps') ??
    (minutes !== undefined ? await stepsForMinutes(minutes, provisional, trainSet, backend) : undefined);
  const epochs = numberArg('epochs');
  const length =
    steps !== undefined ? { train: { steps } } : epochs !== undefined ? { train: { epochs } } : {};
  const config = resolveRunConfig(preset, withSetFlags(length));
  console.log(
    `${preset}: ${JSON.stringify({ model: config.model, head: config.head, loss: config.loss, optim: config.optim, augment: config.augment, train: config.train })}`,
  );

  const out =
    argValue('out') ??
    path.join('.data', 'bench', `quality-${preset}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  // The final checkpoint, as `dinoq train` lays it out, for bench:eval --run-dir and dinoq knn.
  const run = new LocalRun(path.resolve(out), 'trained');
  await run.writeRecord({
    runId: run.runId,
    dataset,
    datasetSize: trainSet.count,
    backend,
    config,
  });
  const trainer = await createTrainer(config, trainSet, backend);
  const points = numberArg('curve-points') ?? 8;
  const every = Math.max(1, Math.ceil(trainer.totalSteps / points));
  const curve: CurvePointRecord[] = [];
  let evalSeconds = 0;
  t0 = performance.now();
  const record = async (step: number) => {
    const started = performance.now();
    const score = await teacherScore(trainer, data, curveProtocol);
    const trainingSeconds = (started - t0) / 1000 - evalSeconds;
    evalSeconds += (performance.now() - started) / 1000;
    const point = {
      step,
      trainingSeconds,
      imagesSeen: step * config.train.batchSize,
      top1: score.top1,
      top5: score.top5,
    };
    curve.push(point);
    console.log(
      `curve: step ${step}/${trainer.totalSteps} after ${(trainingSeconds / 60).toFixed(2)} min of training: k-NN top-1 ${pct(score.top1)}`,
    );
  };
  await record(trainer.step);
  const res = await trainLoop({
    trainer,
    split: trainSet,
    artifacts: run.artifacts,
    onStep: async (m) => {
      if (m.step % 50 === 0)
        console.log(
          `step ${m.step}/${trainer.totalSteps} loss ${m.loss.toFixed(4)} H(t) ${m.teacherEntropy.toFixed(3)} KL ${m.klTeacherStudent.toFixed(3)} ${m.imagesPerSecond.toFixed(1)} img/s`,
        );
      if (trainer.step % every === 0 || trainer.step === trainer.totalSteps) await record(trainer.step);
    },
  });
  const trainSeconds = (performance.now() - t0) / 1000 - evalSeconds;
  console.log(
    `trained ${res.steps} steps (${((res.steps * config.train.batchSize) / trainSet.count).toFixed(2)} epochs of ${trainSet.count} images) in ${trainSeconds.toFixed(0)} s of training on ${backend.name} × ${trainer.replicas}; loss ${res.metrics[0].loss.toFixed(4)} → ${res.metrics.at(-1)!.loss.toFixed(4)}`,
  );

  t0 = performance.now();
  const trained = await teacherScore(trainer, data, final);
  const finalEvalSeconds = (performance.now() - t0) / 1000;
  await trainer.dispose();
  const curveBase = await baselines(config, data, curveProtocol);
  const finalBase =
    final.bank === curveProtocol.bank && final.queries === curveProtocol.queries
      ? curveBase
      : await baselines(config, data, final);

  console.log(`\nk-NN against training time (bank ${curveProtocol.bank}, queries ${curveProtocol.queries}):`);
  console.log('  step   minutes  top-1');
  for (const p of curve)
    console.log(
      `  ${String(p.step).padStart(5)}  ${(p.trainingSeconds / 60).toFixed(2).padStart(7)}  ${pct(p.top1)}`,
    );
  console.log(`  random init ${pct(curveBase.randomInit.top1)}, raw pixels ${pct(curveBase.rawPixels.top1)}`);
  console.log(
    `\nweighted k-NN, k = ${K}, T = 0.07, bank ${final.bank} train images, ${final.queries} test queries:`,
  );
  console.log(
    `  trained teacher (step ${trainer.step}): top-1 ${pct(trained.top1)}  top-5 ${pct(trained.top5)}`,
  );
  console.log(
    `  random init:                top-1 ${pct(finalBase.randomInit.top1)}  top-5 ${pct(finalBase.randomInit.top5)}`,
  );
  console.log(
    `  raw pixels:                 top-1 ${pct(finalBase.rawPixels.top1)}  top-5 ${pct(finalBase.rawPixels.top5)}`,
  );
  console.log(
    `final evaluation of the trained network: ${finalEvalSeconds.toFixed(0)} s; curve evaluations ${evalSeconds.toFixed(0)} s; peak RSS ${peakRssMiB().toFixed(0)} MiB`,
  );

  const figures = {
    preset,
    config,
    backend: backend.name,
    replicas: trainer.replicas,
    trainingSeconds: trainSeconds,
    curveProtocol,
    curve,
    curveBaselines: curveBase,
    finalProtocol: final,
    final: trained,
    finalBaselines: finalBase,
  };
  fs.writeFileSync(path.join(out, 'curve.json'), JSON.stringify(figures, null, 2));
  plotCurve(
    path.join(out, 'curve.png'),
    `${preset}: k-NN top-1 against training time (bank ${curveProtocol.bank}, queries ${curveProtocol.queries})`,
    curve,
    curveBase,
  );
  console.log(
    `figures: ${path.join(out, 'curve.json')}, plot: ${path.join(out, 'curve.png')}, checkpoint: ${run.dir}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
