import { createHash } from 'node:crypto';
import type * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import {
  heldPass,
  manifestEvalCropFraction,
  splitSampleReader,
  StreamedSplitPass,
  type DatasetManifest,
  type SplitPass,
} from '@dinoq/data';
import {
  cachedBaselines,
  cachedFeatures,
  extractFeatures,
  knnWith,
  linearProbe,
  probeWith,
  weightedKnn,
  withBaselineFeatures,
  type BaselineName,
  type BaselineSplits,
  type FeatureExtractor,
  type FeatureSet,
} from '@dinoq/eval';
import {
  knnOptionsSchema,
  linearOptionsSchema,
  evaluationSummary,
  type EvaluateJob,
  type EvaluationBaselines,
  type EvaluationReport,
  type LinearReport,
} from '@dinoq/jobs';
import { disposeParams, networkParams } from '@dinoq/dino';
import { RunArtifacts, baselineKey, featuresKey } from '@dinoq/storage';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import { chooseDataMode, describeDataChoice, shardCacheFor } from '../training-data';
import { resolveCheckpoint } from './resolve-checkpoint';

type EvalSplit = 'train' | 'test';

/** The evaluated dataset's manifest, its train and test splits checked present. */
interface EvalSplits {
  manifest: DatasetManifest;
  manifestSha: string;
  /** Samples evaluated: the first `limit` of the split, or all. */
  samples(split: EvalSplit, limit?: number): number;
}

async function evalSplits(ctx: ComputeContext, datasetName: string): Promise<EvalSplits> {
  const { manifest, manifestSha } = await ctx.datasets.manifest(datasetName);
  for (const split of ['train', 'test']) {
    if (!manifest.splits[split]) {
      throw new UnrecoverableJobError(
        `evaluation needs a "${split}" split; dataset "${datasetName}" has none`,
      );
    }
  }
  return {
    manifest,
    manifestSha,
    samples: (split, limit) => Math.min(limit ?? Infinity, manifest.splits[split].count),
  };
}

/**
 * A split to extract features from, held decoded in memory or streamed from its shards: the rule
 * and settings training uses (chooseDataMode), the choice logged. Both leave unusable samples out
 * and evaluate the same crops (manifestEvalCropFraction), so they give the same features.
 */
async function openPass(
  ctx: ComputeContext,
  scope: JobScope,
  data: EvalSplits,
  split: EvalSplit,
  limit?: number,
): Promise<SplitPass> {
  const { manifest, manifestSha } = data;
  const choice = chooseDataMode(ctx.data, manifest, split);
  scope.log(
    'info',
    `evaluation ${manifest.name}/${split}: ${describeDataChoice(choice)}`,
    { dataMode: choice.mode, decodedBytes: choice.decodedBytes },
    true,
  );
  const cropFraction = manifestEvalCropFraction(manifest);
  const pass =
    choice.mode === 'memory'
      ? heldPass((await ctx.datasets.split(manifest.name, split, limit)).data, cropFraction)
      : new StreamedSplitPass({
          reader: splitSampleReader(manifest, split, await shardCacheFor(ctx, manifest.name, manifestSha)),
          cropFraction,
        });
  return labelledOnly(pass, `${manifest.name}/${split}`);
}

/** The pass, failing for good at the first unlabelled image: evaluation needs labels. */
function labelledOnly(pass: SplitPass, where: string): SplitPass {
  return {
    samples: pass.samples,
    cropFraction: pass.cropFraction,
    skipped: () => pass.skipped(),
    async *batches(batchSize, limit) {
      for await (const batch of pass.batches(batchSize, limit)) {
        if (batch.labels.some((label) => label < 0))
          throw new UnrecoverableJobError(`evaluation needs labelled images; ${where} has unlabelled ones`);
        yield batch;
      }
    },
  };
}

/** Logs what a pass left out; the report carries the counts. */
function logSkipped(scope: JobScope, pass: SplitPass, where: string): void {
  const skipped = pass.skipped();
  if (skipped.images === 0) return;
  scope.log(
    'warn',
    `evaluation ${where}: ${skipped.images} unusable images left out: ${skipped.reasons.slice(0, 3).join('; ')}`,
    { skippedImages: skipped.images, skippedShards: skipped.shards },
    true,
  );
}

/** The report's per-split counts of samples left out, or undefined when none were. */
function skippedImages(
  data: EvalSplits,
  limits: { trainLimit?: number; testLimit?: number },
  counts: { train: number; test: number },
): { train: number; test: number } | undefined {
  const train = data.samples('train', limits.trainLimit) - counts.train;
  const test = data.samples('test', limits.testLimit) - counts.test;
  return train + test > 0 ? { train, test } : undefined;
}

interface BaselineProtocol {
  kind: 'knn' | 'linear';
  /** What changes the scores besides the images and the network: k values, probe settings, …. */
  settings: Record<string, unknown>;
  /** Images evaluated per split (the limits as they apply to this dataset). */
  trainImages: number;
  testImages: number;
  /** The random network's probe features; k-NN uses the final [CLS]. */
  probe?: { lastBlocks: number; avgPool: boolean };
}

/**
 * The random-init and raw-pixel scores of this protocol on this dataset, each read from
 * storage or computed once and stored (libs/storage baselineKey). The stored protocol names the
 * dataset's content (manifest digest), the images evaluated and how they are cropped, the
 * settings, and for the random network its architecture and seed: anything else shares them.
 */
async function baselines<T>(
  ctx: ComputeContext,
  scope: JobScope,
  data: EvalSplits,
  config: RunConfig,
  protocol: BaselineProtocol,
  score: (extract: FeatureExtractor, splits: BaselineSplits) => Promise<T>,
): Promise<{ randomInit: T; rawPixels: T }> {
  const { trainImages: trainLimit, testImages: testLimit } = protocol;
  const splits: BaselineSplits = {
    train: () => openPass(ctx, scope, data, 'train', trainLimit),
    test: () => openPass(ctx, scope, data, 'test', testLimit),
  };
  const { globalCropSize, mean, std } = config.augment;
  const crops = { size: globalCropSize, cropFraction: manifestEvalCropFraction(data.manifest) };
  const scores = async (which: BaselineName) => {
    const stored = {
      ...protocol,
      baseline: which,
      dataset: data.manifestSha,
      crops,
      ...(which === 'randomInit'
        ? { network: { model: config.model, head: config.head, seed: config.train.seed, mean, std } }
        : { probe: undefined }),
    };
    const digest = createHash('sha256').update(JSON.stringify(stored)).digest('hex').slice(0, 32);
    const key = baselineKey(data.manifest.name, `${protocol.kind}-${which.toLowerCase()}-${digest}`);
    const onProgress = progressTo(scope, `${protocol.kind}-${which}-baseline`);
    const result = await cachedBaselines(ctx.store, key, stored, () =>
      withBaselineFeatures(which, { config, onProgress, probe: protocol.probe }, (extract) =>
        score(extract, splits),
      ),
    );
    scope.log(
      'info',
      `${protocol.kind} ${which} baseline ${result.hit ? 'read from' : 'stored at'} ${key}`,
      {},
      true,
    );
    return result.scores;
  };
  const randomInit = await scores('randomInit');
  return { randomInit, rawPixels: await scores('rawPixels') };
}

/**
 * Evaluates a committed checkpoint's teacher backbone: weighted k-NN (train split as the memory
 * bank, test split as queries) and/or a linear probe on frozen features, then writes the report.
 */
export async function evaluate(
  ctx: ComputeContext,
  scope: JobScope,
  job: EvaluateJob,
): Promise<EvaluationReport> {
  const started = Date.now();
  const { run, config, checkpoint } = await resolveCheckpoint(ctx, job.runId, job.step);
  scope.log(
    'info',
    `run ${job.runId}: evaluating step ${checkpoint.step} (${job.kinds.join(', ')})`,
    {},
    true,
  );

  const params = networkParams(config, checkpoint.files, 'teacher');
  let knn: EvaluationReport['knn'] = null;
  let knnSettings: EvaluationReport['knnSettings'] = null;
  let linear: LinearReport | null = null;
  const baselineScores: EvaluationBaselines = {};
  try {
    if (job.kinds.includes('knn')) {
      const settings = knnOptionsSchema.parse(job.knn ?? {});
      const data = await evalSplits(ctx, run.datasetName);
      scope.throwIfAbandoned();
      // Features depend only on (checkpoint, split, samples): later evaluations of the same
      // checkpoint (scheduled sweeps, other k values) read them back instead of recomputing.
      const cached = async (name: EvalSplit, limit?: number) => {
        const samples = data.samples(name, limit);
        const meta = { samples, network: 'teacher', size: config.augment.globalCropSize };
        const key = featuresKey(job.runId, checkpoint.step, name);
        const compute = async () => {
          const pass = await openPass(ctx, scope, data, name, limit);
          const set = await features(params, pass, limit, config, scope, `knn-${name}-features`);
          logSkipped(scope, pass, `${run.datasetName}/${name}`);
          return set;
        };
        const r = await cachedFeatures(ctx.store, key, compute, meta);
        if (r.hit)
          scope.log(
            'info',
            `run ${job.runId}: ${name} features of step ${checkpoint.step} read from ${key}`,
            {},
            true,
          );
        return r.set;
      };
      const bank = await cached('train', settings.trainLimit);
      const queries = await cached('test', settings.testLimit);
      knn = weightedKnn(bank, queries, {
        numClasses: data.manifest.classes.length,
        ks: settings.ks,
        temperature: settings.temperature,
      });
      const skipped = skippedImages(data, settings, { train: bank.count, test: queries.count });
      knnSettings = {
        ...settings,
        trainImages: bank.count,
        testImages: queries.count,
        ...(skipped ? { skippedImages: skipped } : {}),
      };
      const knnProtocol = { ks: settings.ks, temperature: settings.temperature };
      baselineScores.knn = await baselines(
        ctx,
        scope,
        data,
        config,
        {
          kind: 'knn',
          settings: knnProtocol,
          trainImages: data.samples('train', settings.trainLimit),
          testImages: data.samples('test', settings.testLimit),
        },
        (extract, splits) =>
          knnWith(extract, splits, { ...knnProtocol, numClasses: data.manifest.classes.length }),
      );
    }
    if (job.kinds.includes('linear')) {
      const settings = linearOptionsSchema.parse(job.linear ?? {});
      const data = await evalSplits(ctx, run.datasetName);
      scope.throwIfAbandoned();
      const train = await openPass(ctx, scope, data, 'train', settings.trainLimit);
      const test = await openPass(ctx, scope, data, 'test', settings.testLimit);
      const probeOptions = { ...settings, numClasses: data.manifest.classes.length, seed: config.train.seed };
      const result = await linearProbe(params, config, train, test, {
        ...probeOptions,
        onEpoch: (entry) => {
          scope.progress({ phase: 'linear', epoch: entry.epoch, epochs: settings.epochs, top1: entry.top1 });
          // Between epochs the probe holds nothing half-done, so a shutdown may drop the job here.
          scope.throwIfAbandoned();
        },
      });
      linear = {
        top1: result.top1,
        top5: result.top5,
        bestEpoch: result.bestEpoch,
        finalTop1: result.finalTop1,
        finalTop5: result.finalTop5,
        curve: result.curve,
        featureDim: result.featureDim,
        settings,
        trainImages: result.trainCount,
        testImages: result.testCount,
      };
      logSkipped(scope, train, `${run.datasetName}/train`);
      logSkipped(scope, test, `${run.datasetName}/test`);
      const skipped = skippedImages(data, settings, { train: result.trainCount, test: result.testCount });
      if (skipped) linear.skippedImages = skipped;
      const { lastBlocks, avgPool, trainLimit, testLimit, ...probeSettings } = settings;
      baselineScores.linear = await baselines(
        ctx,
        scope,
        data,
        config,
        {
          kind: 'linear',
          settings: { ...probeSettings, seed: config.train.seed },
          trainImages: data.samples('train', trainLimit),
          testImages: data.samples('test', testLimit),
          probe: { lastBlocks, avgPool },
        },
        (extract, splits) => probeWith(extract, splits, probeOptions),
      );
    }
  } finally {
    disposeParams(params);
  }

  const report: EvaluationReport = {
    evalId: job.evalId,
    runId: job.runId,
    step: checkpoint.step,
    kinds: job.kinds,
    network: 'teacher',
    knn,
    knnSettings,
    linear,
    baselines: baselineScores,
    scheduled: job.scheduled,
    durationMs: Date.now() - started,
    backend: ctx.backend.name,
    createdAt: new Date().toISOString(),
  };
  await new RunArtifacts(ctx.store, job.runId).writeEvaluation(job.evalId, report);
  const summary = evaluationSummary(report).join(', ');
  scope.log('info', `run ${job.runId}: step ${checkpoint.step}: ${summary}`, {}, true);
  return report;
}

function features(
  params: Map<string, tf.Tensor>,
  pass: SplitPass,
  limit: number | undefined,
  config: RunConfig,
  scope: JobScope,
  phase: string,
): Promise<FeatureSet> {
  return extractFeatures(params, pass, { config, limit, onProgress: progressTo(scope, phase) });
}

/** Reports extraction progress under `phase`; between batches a shutdown may drop the job. */
function progressTo(scope: JobScope, phase: string): (done: number, total: number) => void {
  return (done, total) => {
    scope.progress({ phase, done, total });
    // Between batches nothing is half-done, so a shutdown may drop the job here.
    scope.throwIfAbandoned();
  };
}
