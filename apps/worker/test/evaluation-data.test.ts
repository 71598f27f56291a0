import { createHash } from 'node:crypto';
import { importFashionMnist, parseManifest, shardKey, type DatasetManifest } from '@dinoq/data';
import type { AttentionJob, AttentionIndex, EvaluateJob, EvaluationReport, TrainShardJob } from '@dinoq/jobs';
import { attentionFileKey, datasetManifestKey, featuresKey } from '@dinoq/storage';
import { exportAttention } from '../src/compute/handlers/attention';
import { evaluate } from '../src/compute/handlers/evaluate';
import { trainShard } from '../src/compute/handlers/train-shard';
import { UnrecoverableJobError } from '../src/compute/protocol';
import { startComputeFixture, tinyRunConfig, type ComputeFixture } from './compute-fixture';

/*
 * Evaluation and attention export read their splits held decoded in memory or streamed from the
 * shards, by the same rule as training: both give the same results, and an unusable image in the
 * evaluated split is left out and counted by both.
 */

const IMAGES = 32;
const DATASET = 'fm-eval';
// Test sample 10 (shard 1, its third sample) is stored as bytes no decoder reads.
const CORRUPT = 10;
const SHARD_SIZE = 8;
const RUN = 'eval-run';
const STEP = 2;

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('evaluation data', () => {
  let fixture: ComputeFixture;

  async function readManifest(): Promise<DatasetManifest> {
    const bytes = await fixture.ctx.store.getBytes(datasetManifestKey(DATASET));
    return parseManifest(JSON.parse(new TextDecoder().decode(bytes)));
  }

  /** Overwrites test sample CORRUPT's PNG signature in its shard and records the shard's new checksum. */
  async function corruptTestImage(): Promise<void> {
    const manifest = await readManifest();
    const shard = manifest.splits.test.shards[Math.floor(CORRUPT / SHARD_SIZE)];
    const key = shardKey(DATASET, shard.file);
    const tar = Buffer.from(await fixture.ctx.store.getBytes(key));
    let at = -1;
    for (let k = 0; k <= CORRUPT % SHARD_SIZE; k++) at = tar.indexOf(PNG_SIGNATURE, at + 1);
    expect(at).toBeGreaterThan(0);
    tar.fill(0x21, at, at + PNG_SIGNATURE.length);
    await fixture.ctx.store.putBytes(key, tar);
    shard.sha256 = createHash('sha256').update(tar).digest('hex');
    await fixture.ctx.store.putJson(datasetManifestKey(DATASET), manifest);
  }

  function evaluateIn(mode: 'memory' | 'streaming', evalId: string): Promise<EvaluationReport> {
    fixture.ctx.data.mode = mode;
    const job: EvaluateJob = {
      runId: RUN,
      evalId,
      step: STEP,
      kinds: ['knn', 'linear'],
      knn: { ks: [1, 5], temperature: 0.07 },
      linear: { epochs: 2, lastBlocks: 1, avgPool: false, lr: 0.001, batchSize: 8 },
      scheduled: false,
    };
    return evaluate(fixture.ctx, fixture.scope('evaluate', job), job);
  }

  async function attentionIn(mode: 'memory' | 'streaming', exportId: string, indices: number[]) {
    fixture.ctx.data.mode = mode;
    const job: AttentionJob = {
      runId: RUN,
      exportId,
      step: STEP,
      images: { split: 'test', indices },
      threshold: 0.6,
    };
    await exportAttention(fixture.ctx, fixture.scope('attention', job), job);
    const index = await fixture.ctx.store.getJson<AttentionIndex>(
      attentionFileKey(RUN, exportId, 'index.json'),
    );
    const input = await fixture.ctx.store.getBytes(
      attentionFileKey(RUN, exportId, index!.images[1].files.input),
    );
    return { images: index!.images, input: Buffer.from(input) };
  }

  beforeAll(async () => {
    fixture = await startComputeFixture({ dataMode: 'memory' });
    await importFashionMnist({
      store: fixture.ctx.store,
      name: DATASET,
      limit: IMAGES,
      shardSize: SHARD_SIZE,
    });
    await corruptTestImage();
    await fixture.createRun(RUN, tinyRunConfig(2), DATASET, IMAGES);
    const train: TrainShardJob = { runId: RUN, shard: 0, fromStep: 0, toStep: STEP };
    await trainShard(fixture.ctx, fixture.scope('train-shard', train), train);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('streamed splits give the k-NN and linear results of splits held in memory; the corrupt image is counted', async () => {
    const held = await evaluateIn('memory', 'held');
    // The features were cached; dropping them makes the streamed evaluation extract its own.
    for (const split of ['train', 'test']) await fixture.ctx.store.delete(featuresKey(RUN, STEP, split));
    const decodedSplits = fixture.ctx.datasets.size;
    const streamed = await evaluateIn('streaming', 'streamed');

    const skippedImages = { train: 0, test: 1 };
    expect(held.knnSettings).toMatchObject({ trainImages: IMAGES, testImages: IMAGES - 1, skippedImages });
    expect(held.linear).toMatchObject({ trainImages: IMAGES, testImages: IMAGES - 1, skippedImages });
    expect(streamed.knn).toEqual(held.knn);
    expect(streamed.knnSettings).toEqual(held.knnSettings);
    expect(streamed.linear).toEqual(held.linear);
    // Nothing was decoded into the dataset cache for the streamed evaluation.
    expect(fixture.ctx.datasets.size).toBe(decodedSplits);
    expect(fixture.logs).toContain(
      `evaluation ${DATASET}/test: data streamed from shards (DINOQ_DATA_MODE=streaming)`,
    );
    expect(
      fixture.logs.some((line) => line.startsWith(`evaluation ${DATASET}/test: 1 unusable images left out`)),
    ).toBe(true);

    // A later evaluation reads the features back and still reports what was left out.
    const again = await evaluateIn('streaming', 'again');
    expect(again.knnSettings).toEqual(held.knnSettings);
    expect(fixture.logs.filter((line) => line.includes(`features of step ${STEP} read from`))).toHaveLength(
      2,
    );
  });

  it('attention export reads its few images held in memory or from the shards, at their sample indices', async () => {
    const streamed = await attentionIn('streaming', 'att-streamed', [2, 5]);
    const held = await attentionIn('memory', 'att-held', [2, 5]);
    expect(held.images).toEqual(streamed.images);
    expect(held.input.equals(streamed.input)).toBe(true);
    expect(fixture.logs).toContain(`attention ${DATASET}/test: data held in memory (DINOQ_DATA_MODE=memory)`);

    // Held in memory, the split lost its corrupt image, which shifts index 12: the shards are read instead.
    const shifted = await attentionIn('memory', 'att-shifted', [2, 12]);
    expect(shifted.images.map((image) => image.name)).toEqual(['test-2', 'test-12']);
    expect(fixture.logs).toContain(
      `attention ${DATASET}/test: data streamed from shards (some images of the split are unusable, so held images are not at their sample indices)`,
    );

    const unusable = attentionIn('streaming', 'att-bad', [CORRUPT]);
    await expect(unusable).rejects.toBeInstanceOf(UnrecoverableJobError);
    await expect(unusable).rejects.toThrow(`images ${CORRUPT} of ${DATASET}/test are unusable`);
  });
});
