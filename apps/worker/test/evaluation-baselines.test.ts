import { importFashionMnist, loadSplit, parseManifest, type DecodedSplit } from '@dinoq/data';
import { disposeParams, initDinoParams } from '@dinoq/dino';
import { extractFeatures, rawPixelFeatures, weightedKnn, type KnnScore } from '@dinoq/eval';
import {
  evaluationReportSchema,
  type EvaluateJob,
  type EvaluationReport,
  type TrainShardJob,
} from '@dinoq/jobs';
import { datasetManifestKey, datasetPrefix } from '@dinoq/storage';
import { evaluate } from '../src/compute/handlers/evaluate';
import { trainShard } from '../src/compute/handlers/train-shard';
import { startComputeFixture, tinyRunConfig, type ComputeFixture } from './compute-fixture';

/*
 * Every evaluation report carries the random-init and raw-pixel scores of its protocol, computed
 * once per dataset and protocol and read back from storage by later evaluations.
 */

const IMAGES = 24;
const DATASET = 'fm-baselines';
const RUN = 'baselines-run';
const STEP = 2;
// The stored 28 px images at the crop size, so the raw-pixel crops are the stored pixels.
const config = (() => {
  const tiny = tinyRunConfig(2);
  return { ...tiny, augment: { ...tiny.augment, globalCropSize: 28 } };
})();

describe('evaluation baselines', () => {
  let fixture: ComputeFixture;
  let train: DecodedSplit;
  let test: DecodedSplit;
  let evals = 0;

  function evaluateWith(
    knn: EvaluateJob['knn'],
    kinds: EvaluateJob['kinds'] = ['knn'],
  ): Promise<EvaluationReport> {
    const job: EvaluateJob = {
      runId: RUN,
      evalId: `eval-${++evals}`,
      step: STEP,
      kinds,
      knn,
      linear: { epochs: 2, lastBlocks: 1, avgPool: false, lr: 0.001, batchSize: 8 },
      scheduled: false,
    };
    return evaluate(fixture.ctx, fixture.scope('evaluate', job), job);
  }

  async function baselineKeys(): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of fixture.ctx.store.list(`${datasetPrefix(DATASET)}baselines/`)) keys.push(key);
    return keys.sort();
  }

  const knnOf = (bank: Parameters<typeof weightedKnn>[0], queries: Parameters<typeof weightedKnn>[1]) =>
    weightedKnn(bank, queries, { numClasses: 10, ks: [1, 5], temperature: 0.07 });

  beforeAll(async () => {
    fixture = await startComputeFixture({ dataMode: 'memory' });
    await importFashionMnist({ store: fixture.ctx.store, name: DATASET, limit: IMAGES, shardSize: 8 });
    const manifest = parseManifest(
      JSON.parse(new TextDecoder().decode(await fixture.ctx.store.getBytes(datasetManifestKey(DATASET)))),
    );
    train = await loadSplit(fixture.ctx.store, manifest, 'train');
    test = await loadSplit(fixture.ctx.store, manifest, 'test');
    await fixture.createRun(RUN, config, DATASET, IMAGES);
    const job: TrainShardJob = { runId: RUN, shard: 0, fromStep: 0, toStep: STEP };
    await trainShard(fixture.ctx, fixture.scope('train-shard', job), job);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('a k-NN and linear report carries both baselines, scored as the benches score them', async () => {
    const report = await evaluateWith({ ks: [1, 5], temperature: 0.07 }, ['knn', 'linear']);
    expect(evaluationReportSchema.safeParse(report).success).toBe(true);

    const pixels = knnOf(rawPixelFeatures(train), rawPixelFeatures(test));
    const params = initDinoParams(config, config.train.seed);
    let random: KnnScore[];
    try {
      random = knnOf(
        await extractFeatures(params, train, { config }),
        await extractFeatures(params, test, { config }),
      );
    } finally {
      disposeParams(params);
    }
    expect(report.baselines?.knn?.rawPixels).toEqual(pixels);
    expect(report.baselines?.knn?.randomInit).toEqual(random);
    for (const which of ['randomInit', 'rawPixels'] as const) {
      const score = report.baselines?.linear?.[which];
      expect(score?.top1).toBeGreaterThanOrEqual(0);
      expect(score?.top5).toBeGreaterThanOrEqual(score!.top1);
    }
    expect((await baselineKeys()).map((key) => key.replace(/-[0-9a-f]{32}\.json$/, ''))).toEqual(
      ['knn-randominit', 'knn-rawpixels', 'linear-randominit', 'linear-rawpixels'].map(
        (name) => `${datasetPrefix(DATASET)}baselines/${name}`,
      ),
    );
  });

  it('a later evaluation of the same protocol reads the stored baselines; another protocol computes its own', async () => {
    const knn = { ks: [1, 5], temperature: 0.07 };
    const first = await evaluateWith(knn);
    // Marked scores in the stored random-init object: a second evaluation that recomputed would not see them.
    const key = (await baselineKeys()).find((k) => k.includes('/knn-randominit-'))!;
    const stored = await fixture.ctx.store.getJson<{ protocol: unknown; scores: KnnScore[] }>(key);
    const marked = stored!.scores.map((score) => ({ ...score, top1: 12.5 }));
    await fixture.ctx.store.putJson(key, { ...stored, scores: marked });

    const second = await evaluateWith(knn);
    expect(second.baselines?.knn?.randomInit).toEqual(marked);
    expect(second.baselines?.knn?.rawPixels).toEqual(first.baselines?.knn?.rawPixels);
    expect(fixture.logs).toContain(`knn randomInit baseline read from ${key}`);

    const keysBefore = await baselineKeys();
    const other = await evaluateWith({ ks: [1], temperature: 0.07, trainLimit: 16 });
    expect(other.baselines?.knn?.randomInit).toHaveLength(1);
    expect(other.baselines?.knn?.randomInit[0].top1).not.toBe(12.5);
    expect((await baselineKeys()).length).toBe(keysBefore.length + 2);
  });
});
