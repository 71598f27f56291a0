import type * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import type { DecodedSplit } from '@dinoq/data';
import { cachedFeatures, extractFeatures, linearProbe, weightedKnn, type FeatureSet } from '@dinoq/eval';
import {
  knnOptionsSchema,
  linearOptionsSchema,
  type EvaluateJob,
  type EvaluationReport,
  type LinearReport,
} from '@dinoq/jobs';
import { disposeParams, networkParams } from '@dinoq/dino';
import { RunArtifacts, featuresKey } from '@dinoq/storage';
import type { ComputeContext, JobScope } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';
import { resolveCheckpoint } from './resolve-checkpoint';

function checkLabelled(split: DecodedSplit, name: string, dataset: string): void {
  for (const label of split.labels) {
    if (label < 0) {
      throw new UnrecoverableJobError(
        `evaluation needs labelled images; ${dataset}/${name} has unlabelled ones`,
      );
    }
  }
}

interface EvalData {
  train: DecodedSplit;
  test: DecodedSplit;
  numClasses: number;
}

async function evalData(
  ctx: ComputeContext,
  datasetName: string,
  limits: { trainLimit?: number; testLimit?: number },
): Promise<EvalData> {
  const { manifest } = await ctx.datasets.manifest(datasetName);
  for (const split of ['train', 'test']) {
    if (!manifest.splits[split]) {
      throw new UnrecoverableJobError(
        `evaluation needs a "${split}" split; dataset "${datasetName}" has none`,
      );
    }
  }
  const train = (await ctx.datasets.split(datasetName, 'train', limits.trainLimit)).data;
  const test = (await ctx.datasets.split(datasetName, 'test', limits.testLimit)).data;
  checkLabelled(train, 'train', datasetName);
  checkLabelled(test, 'test', datasetName);
  return { train, test, numClasses: manifest.classes.length };
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
  try {
    if (job.kinds.includes('knn')) {
      const settings = knnOptionsSchema.parse(job.knn ?? {});
      const data = await evalData(ctx, run.datasetName, settings);
      scope.throwIfAbandoned();
      // Features depend only on (checkpoint, split, image count): later evaluations of the same
      // checkpoint (scheduled sweeps, other k values) read them back instead of recomputing.
      const cached = async (split: DecodedSplit, name: 'train' | 'test') => {
        const meta = { images: split.count, network: 'teacher', size: config.augment.globalCropSize };
        const key = featuresKey(job.runId, checkpoint.step, name);
        const r = await cachedFeatures(
          ctx.store,
          key,
          () => features(params, split, config, scope, `knn-${name}-features`),
          meta,
        );
        if (r.hit)
          scope.log(
            'info',
            `run ${job.runId}: ${name} features of step ${checkpoint.step} read from ${key}`,
            {},
            true,
          );
        return r.set;
      };
      const bank = await cached(data.train, 'train');
      const queries = await cached(data.test, 'test');
      knn = weightedKnn(bank, queries, {
        numClasses: data.numClasses,
        ks: settings.ks,
        temperature: settings.temperature,
      });
      knnSettings = { ...settings, trainImages: data.train.count, testImages: data.test.count };
    }
    if (job.kinds.includes('linear')) {
      const settings = linearOptionsSchema.parse(job.linear ?? {});
      const data = await evalData(ctx, run.datasetName, settings);
      scope.throwIfAbandoned();
      const result = await linearProbe(params, config, data.train, data.test, {
        ...settings,
        numClasses: data.numClasses,
        seed: config.train.seed,
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
    scheduled: job.scheduled,
    durationMs: Date.now() - started,
    backend: ctx.backend.name,
    createdAt: new Date().toISOString(),
  };
  await new RunArtifacts(ctx.store, job.runId).writeEvaluation(job.evalId, report);
  const summary = [
    knn ? `k-NN top-1 ${Math.max(...knn.map((score) => score.top1)).toFixed(2)}%` : null,
    linear ? `linear top-1 ${linear.top1.toFixed(2)}%` : null,
  ].filter(Boolean);
  scope.log('info', `run ${job.runId}: step ${checkpoint.step}: ${summary.join(', ')}`, {}, true);
  return report;
}

function features(
  params: Map<string, tf.Tensor>,
  split: DecodedSplit,
  config: RunConfig,
  scope: JobScope,
  phase: string,
): Promise<FeatureSet> {
  return extractFeatures(params, split, {
    config,
    onProgress: (done, total) => {
      scope.progress({ phase, done, total });
      // Between batches nothing is half-done, so a shutdown may drop the job here.
      scope.throwIfAbandoned();
    },
  });
}
