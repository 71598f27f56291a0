import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { itersPerEpochFor, resolveRunConfig, type PresetName, type RunConfig } from '@dinoq/config';
import { disposeParams, networkParams, resolveReplicas, selectBackend } from '@dinoq/dino';
import { FsBlobStore, importFashionMnist, loadSplit, readManifest, type DecodedSplit } from '@dinoq/data';
import { extractFeatures, weightedKnn } from '@dinoq/eval';
import { median } from '@dinoq/jobs';
import { RunArtifacts } from '@dinoq/storage';
import { replicaSetting } from '../options';
import { argValue, presetArg } from './bench-data';
import {
  machineLabel,
  mb,
  mergeLogOf,
  movedBytes,
  parseStepLines,
  pct,
  roundFigures,
  steadyImagesPerSecond,
  type MergeLog,
  type RoundFigures,
} from './scale-figures';
import { trainRounds, trainSynchronous, type InnerMoments } from './scale-quality';
import {
  checkpointSizes,
  createRun,
  dropRun,
  startScaleStack,
  waitForRun,
  type ScaleStack,
  type WorkerEnv,
  type WorkerProcess,
} from './scale-stack';

/**
 * npm run bench:scale [-- --part throughput|quality|all] [--train-limit 6400] [--steps 800]
 *                     [--h 10,50,200] [--setups a,b,c] [--slices 2] [--blas-threads 1]
 *                     [--data-threads auto] [--backend auto] [--timeout-minutes 240]
 *                     [--quality-steps n] [--quality-h 50,200] [--bank-limit 10000]
 *                     [--test-limit 2000] [--replicas auto] [--quality-moments averaged,per-slice]
 *                     [--quality-baselines 1x,2x|none] [--outers 0.7:0.9,1:0] [--seeds 0,1,2]
 *                     [--quality-preset fmnist-tiny]
 *
 * One run across many workers (DiLoCo rounds over BullMQ flows) on the fmnist-tiny preset and the
 * first `--train-limit` Fashion-MNIST training images. Figures, not assertions.
 *
 * Part 1, throughput: real worker processes (apps/worker/dist), the Redis of REDIS_URL under a
 * prefix of its own and an embedded S3 server. One run per setup:
 *   a) 1 worker, DINOQ_TRAIN_REPLICAS=1, sequential shards;
 *   b) 1 worker, DINOQ_TRAIN_REPLICAS=<slices>, sequential shards;
 *   c) <slices> workers × 1 replica, a run of <slices> slices, for every H of --h.
 * Every worker gets DINOQ_BLAS_THREADS=--blas-threads. Printed: images/s from the run's creation to
 * its completion and in steady state (step timestamps of the metrics lines), and for rounds the
 * wall time, merge time and bytes moved per round. Targets of the issue: c ≥ 1.8 × a and c ≥ 0.9 × b
 * at H = 50.
 *
 * Part 2, quality at equal images seen: in this process, synchronous training at the preset's batch
 * (as many optimizer steps as the rounds' global steps) and at <slices>× the batch (data parallelism
 * where each replica takes a slice's batch: as many steps as each slice trains, the DiLoCo paper's
 * baseline), and DiLoCo rounds of <slices> slices for every H of --quality-h (slices trained one
 * after another, which gives the distributed run's result) and every --quality-moments choice (a
 * slice's AdamW moments: the merged mean, as the worker does, or its own from the previous round),
 * then weighted k-NN top-1 (k = 20, T = 0.07) of each teacher: bank of --bank-limit training images,
 * --test-limit test queries. --quality-baselines picks the synchronous baselines (1x: the preset's
 * batch, 2x: <slices>× the batch; none: DiLoCo only); --outers lists outer
 * optimizer settings `lr:momentum` to train DiLoCo with, each in place of the defaults (checked by
 * the run schema); --seeds trains every variant once per seed (the seed sets the initial weights
 * and the sample order, so a seed's runs differ only in how they train) and prints each variant's
 * mean and the paired differences with their standard errors; --quality-preset trains another
 * preset than fmnist-tiny.
 *
 * --steps (and --quality-steps) are rounded up to whole epochs of the training images, since a
 * run's length is a number of epochs. The default is two rounds of the largest H: 800 steps, which
 * are 8 epochs of the default 6400 images, so every round of H = 10, 50 and 200 is a full one.
 */

const SETUPS = ['a', 'b', 'c'] as const;
type SetupKey = (typeof SETUPS)[number];

function positiveInt(name: string, fallback: number): number {
  const raw = argValue(name, String(fallback))!;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return value;
}

function positiveInts(name: string, fallback: string): number[] {
  const raw = argValue(name, fallback)!;
  const values = raw.split(',').map((v) => Number(v.trim()));
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 1))
    throw new Error(`--${name} must be a comma-separated list of positive integers, got ${raw}`);
  return values;
}

/** `preset` (fmnist-tiny unless named) with at least `steps` steps (whole epochs) over `datasetSize` images. */
function benchConfig(
  datasetSize: number,
  steps: number,
  parallel: { slices: number; h: number; batchScale?: number; outer?: OuterSetting },
  run: { preset?: PresetName; seed?: number } = {},
): RunConfig {
  const preset = run.preset ?? 'fmnist-tiny';
  const base = resolveRunConfig(preset);
  const epochs = Math.ceil(steps / itersPerEpochFor(datasetSize, base.train.batchSize));
  // A larger global batch keeps the epochs, so the images seen stay equal; the preset's lr is per
  // 256 images and scales with the batch.
  return resolveRunConfig(preset, {
    train: {
      epochs,
      batchSize: base.train.batchSize * (parallel.batchScale ?? 1),
      ...(run.seed === undefined ? {} : { seed: run.seed }),
    },
    parallel: { slices: parallel.slices, syncEverySteps: parallel.h, outer: parallel.outer },
  });
}

const signedPoints = (delta: number) => (delta >= 0 ? '+' : '') + delta.toFixed(2);
const seconds = (ms: number) => (ms / 1000).toFixed(1);
const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

interface Setup {
  key: SetupKey;
  label: string;
  workers: number;
  replicas: number;
  slices: number;
  h: number;
}

interface Throughput {
  setup: Setup;
  imagesPerSecond: number;
  steadyImagesPerSecond: number;
}

interface ThroughputOptions {
  steps: number;
  slices: number;
  env: Omit<WorkerEnv, 'trainReplicas'>;
  timeoutMs: number;
}

/** What the first training job said it trains with: "1 replica and 1 augmentation thread". */
function sessionOf(workers: readonly WorkerProcess[]): string {
  for (const worker of workers)
    for (const line of worker.lines) {
      const match = /^run \S+: .* trains steps .* with (.+)$/.exec(String(line.msg));
      if (match) return match[1];
    }
  return 'unknown';
}

async function waitForMerge(
  workers: readonly WorkerProcess[],
  runId: string,
  toStep: number,
  timeoutMs: number,
): Promise<MergeLog[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const merges = workers
      .flatMap((worker) => worker.lines.map((line) => mergeLogOf(runId, line)))
      .filter((merge): merge is MergeLog => merge !== null);
    if (merges.some((merge) => merge.toStep === toStep)) return merges;
    if (Date.now() > deadline) throw new Error(`run ${runId}: no merge of the last round was logged`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function printRounds(rounds: readonly RoundFigures[], h: number, runWallMs: number): void {
  // The medians leave out the first round (no start checkpoint to read; dataset load and trainer
  // start) and a shorter last round, unless nothing else is left.
  const full = rounds.filter((r) => r.toStep - r.fromStep === r.slices * h);
  const later = full.filter((r) => r.fromStep > 0);
  const use = later.length > 0 ? later : full.length > 0 ? full : rounds;
  const m = (pick: (r: RoundFigures) => number) => median(use.map(pick));
  const wallMs = m((r) => r.wallMs);
  const mergeMs = m((r) => r.mergeMs);
  const trainMs = m((r) => r.trainMs);
  const restMs = wallMs - mergeMs - trainMs;
  const totalMerge = rounds.reduce((sum, r) => sum + r.mergeMs, 0);
  const first = rounds[0];
  console.log(
    `   ${rounds.length} rounds; merges took ${seconds(totalMerge)} s = ${fixed(pct(totalMerge, runWallMs))}% of the run; ` +
      `first round ${first.fromStep}..${first.toStep}: wall ${seconds(first.wallMs)} s (with dataset load and trainer start), ` +
      `merge ${fixed(first.mergeMs, 0)} ms`,
  );
  console.log(
    `   per round (median of ${use.length}: ${use === later ? 'full rounds after the first' : 'every round'}): ` +
      `wall ${seconds(wallMs)} s, merge ${fixed(mergeMs, 0)} ms (${fixed(pct(mergeMs, wallMs))}% of the round), ` +
      `slices training ${seconds(trainMs)} s (${fixed(pct(trainMs, wallMs))}%), ` +
      `rest (queue hops, checkpoint load + restore, commits) ${seconds(restMs)} s (${fixed(pct(restMs, wallMs))}%)`,
  );
  const moved = m(movedBytes);
  console.log(
    `   bytes per round (median): slices read ${fixed(mb(m((r) => r.sliceReadBytes)))} MB + write ` +
      `${fixed(mb(m((r) => r.sliceWriteBytes)))} MB, merge read ${fixed(mb(m((r) => r.mergeReadBytes)))} MB + write ` +
      `${fixed(mb(m((r) => r.mergeWriteBytes)))} MB = ${fixed(mb(moved))} MB per round, ` +
      `${fixed(mb(moved) / (wallMs / 1000), 2)} MB/s over the round's wall time`,
  );
}

async function measureSetup(stack: ScaleStack, setup: Setup, opts: ThroughputOptions): Promise<Throughput> {
  const config = benchConfig(stack.datasetSize, opts.steps, { slices: setup.slices, h: setup.h });
  const runId = `scale-${setup.key}${setup.slices > 1 ? `-h${setup.h}` : ''}-${Date.now().toString(36)}`;
  const workers = Array.from({ length: setup.workers }, (_, i) =>
    stack.startWorker(`${setup.key}${i}`, { ...opts.env, trainReplicas: setup.replicas }),
  );
  try {
    await Promise.all(workers.map((worker) => worker.ready()));
    const starting = workers[0].lines.find((line) => line.msg === 'worker starting');
    const backend = String(starting?.detail ?? starting?.backend).split('; skipped')[0];
    console.log(`\n${setup.label}\n   worker backend: ${backend}`);
    const created = await createRun(stack, runId, config);
    console.log(
      `   run ${runId}: ${created.totalSteps} steps of ${config.train.batchSize} images` +
        `${created.totalSteps !== opts.steps ? ` (--steps ${opts.steps} rounded up to whole epochs)` : ''} …`,
    );
    const run = await waitForRun(stack, runId, workers, opts.timeoutMs);
    const merges = run.rounds ? await waitForMerge(workers, runId, run.totalSteps, 120_000) : [];
    const wallMs = Date.parse(run.updatedAt) - Date.parse(run.createdAt);
    const images = run.totalSteps * config.train.batchSize;
    const jobs = (await new RunArtifacts(stack.store, runId).metricsFiles()).map((file) =>
      parseStepLines(path.basename(file.key, '.jsonl'), file.text),
    );
    const imagesPerSecond = (images * 1000) / wallMs;
    const steady = steadyImagesPerSecond(jobs, config.train.batchSize);
    console.log(
      `   ${run.totalSteps} steps = ${images} images in ${seconds(wallMs)} s (run created → completed): ` +
        `${fixed(imagesPerSecond)} img/s; steady state ${fixed(steady)} img/s ` +
        `(metrics lines, each job's first 2 steps left out) [${machineLabel()}]`,
    );
    console.log(`   trained with ${sessionOf(workers)} per worker`);
    if (run.rounds) {
      const sizes = await checkpointSizes(stack.store, runId, run.committedSteps);
      printRounds(roundFigures(merges, jobs, sizes, Date.parse(run.createdAt)), setup.h, wallMs);
    } else {
      console.log(`   ${run.committedSteps.length} shards of ${run.stepsPerShard} steps`);
    }
    await dropRun(stack.store, runId);
    return { setup, imagesPerSecond, steadyImagesPerSecond: steady };
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
  }
}

async function throughputPart(
  opts: ThroughputOptions & { hs: number[]; trainLimit: number; setups: SetupKey[] },
) {
  console.log(`\n== Part 1: throughput (worker processes, Redis, embedded S3) [${machineLabel()}]`);
  const stack = await startScaleStack(opts.trainLimit);
  const n = opts.slices;
  try {
    console.log(
      `fmnist-tiny on ${stack.datasetSize} Fashion-MNIST training images; DINOQ_BLAS_THREADS=${opts.env.blasThreads}, ` +
        `DINOQ_DATA_THREADS=${opts.env.dataThreads}, DINOQ_BACKEND=${opts.env.backend}`,
    );
    const setups: Setup[] = [];
    const shardH = resolveRunConfig('fmnist-tiny').parallel.syncEverySteps;
    if (opts.setups.includes('a'))
      setups.push({
        key: 'a',
        label: 'a) 1 worker × 1 replica, sequential shards',
        workers: 1,
        replicas: 1,
        slices: 1,
        h: shardH,
      });
    if (opts.setups.includes('b'))
      setups.push({
        key: 'b',
        label: `b) 1 worker × ${n} replicas, sequential shards`,
        workers: 1,
        replicas: n,
        slices: 1,
        h: shardH,
      });
    if (opts.setups.includes('c'))
      for (const h of opts.hs)
        setups.push({
          key: 'c',
          label: `c) ${n} workers × 1 replica, ${n} slices, H = ${h}`,
          workers: n,
          replicas: 1,
          slices: n,
          h,
        });
    const results: Throughput[] = [];
    for (const setup of setups) results.push(await measureSetup(stack, setup, opts));

    const a = results.find((r) => r.setup.key === 'a');
    const b = results.find((r) => r.setup.key === 'b');
    const cs = results.filter((r) => r.setup.key === 'c');
    if (cs.length > 0 && (a || b)) {
      console.log(`\nratios (end to end; steady state in brackets) [${machineLabel()}]:`);
      for (const c of cs) {
        const ratio = (base: Throughput | undefined, name: string) =>
          base
            ? `c/${name} ${fixed(c.imagesPerSecond / base.imagesPerSecond, 2)}× ` +
              `(${fixed(c.steadyImagesPerSecond / base.steadyImagesPerSecond, 2)}×)`
            : '';
        console.log(`   H = ${c.setup.h}: ${[ratio(a, 'a'), ratio(b, 'b')].filter(Boolean).join(', ')}`);
      }
      console.log('   targets: c ≥ 1.8× a and c ≥ 0.9× b at H = 50');
    }
  } finally {
    await stack.close();
  }
}

interface QualityOptions {
  steps: number;
  slices: number;
  hs: number[];
  moments: InnerMoments[];
  /** DiLoCo is trained with each; `{}` is the schema's defaults. */
  outers: OuterSetting[];
  preset: PresetName;
  /** Every variant is trained once per seed; undefined: the preset's seed only. */
  seeds: (number | undefined)[];
  /** The synchronous baselines to train too (they do not depend on H or the moments). */
  baselines: Baseline[];
  trainLimit: number;
  bankLimit: number;
  testLimit: number;
  replicas: string;
}

/** Outer optimizer settings given on the command line; the rest stay the schema's defaults. */
interface OuterSetting {
  lr?: number;
  momentum?: number;
}

interface QualityVariant {
  name: string;
  slices: number;
  h: number;
  batchScale?: number;
  moments?: InnerMoments;
  outer?: OuterSetting;
}

/** The synchronous baselines (when asked for), then DiLoCo for every H and every moments choice. */
function qualityVariants(opts: QualityOptions, defaultH: number): QualityVariant[] {
  const baselines: Record<Baseline, QualityVariant> = {
    '1x': { name: BASELINE_SEQUENTIAL, slices: 1, h: defaultH },
    '2x': { name: BASELINE_DATA_PARALLEL, slices: 1, h: defaultH, batchScale: opts.slices },
  };
  const rounds = opts.hs.flatMap((h) =>
    opts.moments.flatMap((moments) =>
      opts.outers.map((outer) => ({
        name:
          `DiLoCo ${opts.slices} slices, H = ${h}` +
          (moments === 'averaged' ? '' : `, ${moments} moments`) +
          Object.entries(outer)
            .map(([key, value]) => `, outer ${key} ${value}`)
            .join(''),
        slices: opts.slices,
        h,
        moments,
        outer,
      })),
    ),
  );
  return [...opts.baselines.map((b) => baselines[b]), ...rounds];
}

const BASELINE_SEQUENTIAL = 'synchronous (1 slice)';
const BASELINE_DATA_PARALLEL = 'synchronous, N× batch';

interface QualityScore {
  name: string;
  seed: number;
  top1: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
/** Sample standard deviation (0 for one value). */
const spread = (xs: number[]) =>
  xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));

/** The variants' names in the order they were trained, each with its scores in seed order. */
function scoresByVariant(scores: QualityScore[]): Map<string, QualityScore[]> {
  const byName = new Map<string, QualityScore[]>();
  for (const score of scores) byName.set(score.name, [...(byName.get(score.name) ?? []), score]);
  return byName;
}

/**
 * Every variant's mean over the seeds (with the spread and each seed's score when there are
 * several), then DiLoCo's against each synchronous baseline that was trained: the mean of the
 * per-seed differences (the same seed gives both the same initial weights and sample order) and
 * its standard error.
 */
function printQualityComparison(scores: QualityScore[], slices: number): void {
  const byName = scoresByVariant(scores);
  const seeds = [...new Set(scores.map((s) => s.seed))];
  console.log(
    `\nk-NN top-1 at equal images seen` +
      (seeds.length > 1 ? `, mean ± standard deviation over seeds ${seeds.join(', ')} (each seed's):` : ':'),
  );
  for (const [name, own] of byName) {
    const top1s = own.map((s) => s.top1);
    const each =
      top1s.length > 1
        ? ` ± ${spread(top1s).toFixed(2)} (${top1s.map((t) => t.toFixed(2)).join(' / ')})`
        : '';
    console.log(`   ${name.padEnd(44)} ${mean(top1s).toFixed(2)}%${each}`);
  }
  const against = [
    { name: BASELINE_SEQUENTIAL, label: 'synchronous at the preset batch (as many steps as the rounds)' },
    {
      name: BASELINE_DATA_PARALLEL,
      label: `synchronous data parallelism at ${slices}× batch (each replica a slice's batch)`,
    },
  ];
  for (const { name, label } of against) {
    const baseline = byName.get(name);
    if (!baseline) continue;
    console.log(`against ${label}${seeds.length > 1 ? ', paired by seed, ± standard error' : ''}:`);
    for (const [variant, own] of byName) {
      if (!variant.startsWith('DiLoCo')) continue;
      const deltas = own.flatMap((s) => {
        const base = baseline.find((b) => b.seed === s.seed);
        return base ? [s.top1 - base.top1] : [];
      });
      if (deltas.length === 0) continue;
      const error = deltas.length > 1 ? ` ± ${(spread(deltas) / Math.sqrt(deltas.length)).toFixed(2)}` : '';
      console.log(`   ${variant.padEnd(44)} ${signedPoints(mean(deltas))}${error} points`);
    }
  }
}

/** What one trained variant is scored with: the k-NN bank and queries and the machine's setting. */
interface QualityContext {
  opts: QualityOptions;
  trainSet: DecodedSplit;
  train: DecodedSplit;
  test: DecodedSplit;
  numClasses: number;
  replicas: number;
  backend: string;
}

/** Trains `variant` with `seed` (the preset's when undefined), prints its figures and returns its k-NN top-1. */
async function trainAndScore(
  ctx: QualityContext,
  variant: QualityVariant,
  seed: number | undefined,
): Promise<QualityScore> {
  const { opts, trainSet, train, test } = ctx;
  const config = benchConfig(trainSet.count, opts.steps, variant, { preset: opts.preset, seed });
  const label = `${variant.name}, seed ${config.train.seed}`;
  const started = performance.now();
  const total = itersPerEpochFor(trainSet.count, config.train.batchSize) * config.train.epochs;
  let trained = 0;
  const onStep = () => {
    trained += 1;
    if (trained % Math.ceil(total / 4) === 0 && trained < total)
      console.log(`   ${label}: ${trained}/${total} steps (${seconds(performance.now() - started)} s)`);
  };
  const inProcess = { replicas: ctx.replicas, backend: ctx.backend, onStep, moments: variant.moments };
  const files =
    variant.slices > 1
      ? await trainRounds(config, trainSet, inProcess)
      : await trainSynchronous(config, trainSet, inProcess);
  const trainMs = performance.now() - started;
  const evalStarted = performance.now();
  const teacher = networkParams(config, files, 'teacher');
  let top1: number;
  try {
    const bank = await extractFeatures(teacher, train, { config, limit: opts.bankLimit });
    const queries = await extractFeatures(teacher, test, { config });
    top1 = weightedKnn(bank, queries, { numClasses: ctx.numClasses, ks: [20] })[0].top1;
  } finally {
    disposeParams(teacher);
  }
  console.log(
    `   ${label}: ${total} steps (${total * config.train.batchSize} images) trained in ${seconds(trainMs)} s ` +
      `(${fixed((total * config.train.batchSize * 1000) / trainMs)} img/s in this process) [${machineLabel()}]; ` +
      `k-NN top-1 ${top1.toFixed(2)}% (evaluated in ${seconds(performance.now() - evalStarted)} s)`,
  );
  return { name: variant.name, seed: config.train.seed, top1 };
}

async function qualityPart(opts: QualityOptions): Promise<void> {
  console.log(`\n== Part 2: quality at equal images seen (in this process) [${machineLabel()}]`);
  const backend = await selectBackend();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-bench-scale-data-'));
  try {
    const store = new FsBlobStore(root);
    const limit = Math.max(opts.trainLimit, opts.bankLimit, opts.testLimit);
    await importFashionMnist({ store, name: 'fmnist', limit });
    const manifest = await readManifest(store, 'fmnist');
    const train = await loadSplit(store, manifest, 'train', {
      limit: Math.max(opts.trainLimit, opts.bankLimit),
    });
    const test = await loadSplit(store, manifest, 'test', { limit: opts.testLimit });
    const trainSet: DecodedSplit = { ...train, count: Math.min(opts.trainLimit, train.count) };
    const base = resolveRunConfig(opts.preset);
    const replicas = resolveReplicas(replicaSetting(opts.replicas), backend, base.train.batchSize);

    const variants = qualityVariants(opts, base.parallel.syncEverySteps);
    const bankCount = Math.min(opts.bankLimit, train.count);
    console.log(
      `${opts.preset} on ${trainSet.count} training images, ${replicas} replica(s) on ${backend.name}; ` +
        `weighted k-NN k = 20, T = 0.07, bank ${bankCount} train images, ${test.count} test queries`,
    );
    const ctx: QualityContext = {
      opts,
      trainSet,
      train,
      test,
      numClasses: manifest.classes.length,
      replicas,
      backend: backend.name,
    };
    const scores: QualityScore[] = [];
    // Seed by seed, so that a run stopped early still has whole seeds to compare.
    for (const seed of opts.seeds)
      for (const variant of variants) scores.push(await trainAndScore(ctx, variant, seed));
    printQualityComparison(scores, opts.slices);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** `--outers lr:momentum,…`: the outer optimizer settings DiLoCo is trained with (default: the schema's). */
function outerSettings(): OuterSetting[] {
  const raw = argValue('outers');
  if (raw === undefined) return [{}];
  return raw.split(',').map((pair) => {
    const [lr, momentum, ...rest] = pair.split(':').map(Number);
    if (rest.length > 0 || !Number.isFinite(lr) || !Number.isFinite(momentum))
      throw new Error(`--outers takes lr:momentum pairs separated by commas, got ${raw}`);
    return { lr, momentum };
  });
}

const BASELINES = ['1x', '2x'] as const;
type Baseline = (typeof BASELINES)[number];

/** `--quality-baselines 1x,2x|none` (default both). */
function baselineList(): Baseline[] {
  const raw = argValue('quality-baselines', BASELINES.join(','))!;
  if (raw === 'none') return [];
  const values = raw.split(',');
  if (values.some((v) => !(BASELINES as readonly string[]).includes(v)))
    throw new Error(`--quality-baselines takes 1x, 2x or none, got ${raw}`);
  return values as Baseline[];
}

/** `--seeds a,b,…`: non-negative integers (default: the preset's seed). */
function seedList(): (number | undefined)[] {
  const raw = argValue('seeds');
  if (raw === undefined) return [undefined];
  const seeds = raw.split(',').map(Number);
  if (seeds.some((v) => !Number.isInteger(v) || v < 0))
    throw new Error(`--seeds must be a comma-separated list of non-negative integers, got ${raw}`);
  return seeds;
}

function qualityMoments(): InnerMoments[] {
  const raw = argValue('quality-moments', 'averaged')!;
  const values = raw.split(',');
  if (values.some((v) => v !== 'averaged' && v !== 'per-slice'))
    throw new Error(`--quality-moments takes averaged and per-slice, got ${raw}`);
  return values as InnerMoments[];
}

async function main(): Promise<void> {
  const part = argValue('part', 'all')!;
  if (!['throughput', 'quality', 'all'].includes(part))
    throw new Error(`--part must be throughput, quality or all, got ${part}`);
  const slices = positiveInt('slices', 2);
  const hs = positiveInts('h', '10,50,200');
  const steps = positiveInt('steps', 2 * slices * Math.max(...hs));
  // 100 steps an epoch: the default 800 steps are whole epochs and whole rounds for every default H.
  const trainLimit = positiveInt('train-limit', 6400);
  const setups = argValue('setups', SETUPS.join(','))!.split(',') as SetupKey[];
  if (setups.some((s) => !SETUPS.includes(s)))
    throw new Error(`--setups takes a, b and c, got ${setups.join(',')}`);
  // The S3 client of the embedded server warns about node 20 on every start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  console.log(`bench:scale on ${machineLabel()}, node ${process.version}`);
  if (part !== 'quality') {
    await throughputPart({
      steps,
      slices,
      hs,
      trainLimit,
      setups,
      timeoutMs: positiveInt('timeout-minutes', 240) * 60_000,
      env: {
        blasThreads: positiveInt('blas-threads', 1),
        dataThreads: argValue('data-threads', 'auto')!,
        backend: argValue('backend', 'auto')!,
      },
    });
  }
  if (part !== 'throughput') {
    const qualityHs = positiveInts('quality-h', '50,200');
    await qualityPart({
      steps: positiveInt('quality-steps', argValue('steps') ? steps : 2 * slices * Math.max(...qualityHs)),
      slices,
      hs: qualityHs,
      moments: qualityMoments(),
      outers: outerSettings(),
      preset: presetArg('quality-preset', 'fmnist-tiny'),
      seeds: seedList(),
      baselines: baselineList(),
      trainLimit,
      bankLimit: positiveInt('bank-limit', 10_000),
      testLimit: positiveInt('test-limit', 2_000),
      replicas: argValue('replicas', 'auto')!,
    });
  }
}

main()
  .then(() => process.exit(0))
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
