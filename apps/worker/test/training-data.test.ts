import { importFashionMnist, parseManifest } from '@dinoq/data';
import { parseMetricsFiles, type TrainShardJob } from '@dinoq/jobs';
import { RunArtifacts, datasetManifestKey } from '@dinoq/storage';
import { trainShard } from '../src/compute/handlers/train-shard';
import { chooseDataMode } from '../src/compute/training-data';
import { startComputeFixture, tinyRunConfig, type ComputeFixture } from './compute-fixture';

/*
 * A training job's data held decoded in memory or streamed from its shards through the local
 * cache: the same batches, so the same checkpoint bytes; unusable shards are skipped and counted.
 */

const IMAGES = 32;
// 32 images in 4 shards of 8, batches of 8: 4 steps an epoch; 2 epochs, shards of 2 steps.
const config = tinyRunConfig(2);
const shard0 = (runId: string): TrainShardJob => ({ runId, shard: 0, fromStep: 0, toStep: 2 });

describe('training data', () => {
  let fixture: ComputeFixture;
  const train = (job: TrainShardJob) => trainShard(fixture.ctx, fixture.scope('train-shard', job), job);

  async function checkpoint(runId: string, step: number) {
    return (await new RunArtifacts(fixture.ctx.store, runId).loadCheckpoint(step)).files;
  }

  async function lines(runId: string) {
    return parseMetricsFiles(await new RunArtifacts(fixture.ctx.store, runId).metricsFiles()).lines;
  }

  beforeAll(async () => {
    fixture = await startComputeFixture();
    for (const name of ['fm4', 'fm4-damaged'])
      await importFashionMnist({ store: fixture.ctx.store, name, limit: IMAGES, shardSize: 8 });
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('streamed and in-memory data give the same batches, so the same checkpoint bytes', async () => {
    fixture.ctx.data.mode = 'memory';
    await fixture.createRun('in-memory', config, 'fm4', IMAGES);
    await train(shard0('in-memory'));
    fixture.ctx.data.mode = 'streaming';
    await fixture.createRun('streamed', config, 'fm4', IMAGES);
    await train(shard0('streamed'));

    const [a, b] = await Promise.all([checkpoint('in-memory', 2), checkpoint('streamed', 2)]);
    for (const name of Object.keys(a))
      expect([name, Buffer.from(b[name]).equals(Buffer.from(a[name]))]).toEqual([name, true]);
    expect((await lines('in-memory')).map((line) => line.dataMode)).toEqual(['memory', 'memory']);
    expect((await lines('streamed')).map((line) => line.dataMode)).toEqual(['streaming', 'streaming']);
    expect(
      fixture.logs.some((line) => line.includes('data streamed from shards (DINOQ_DATA_MODE=streaming)')),
    ).toBe(true);
    // The shards were cached on local disk for the next job.
    expect(fixture.ctx.shardCaches.size).toBe(1);
  });

  it('a shard damaged in storage is fetched again, then skipped and counted; training goes on', async () => {
    const manifest = parseManifest(
      JSON.parse(
        new TextDecoder().decode(await fixture.ctx.store.getBytes(datasetManifestKey('fm4-damaged'))),
      ),
    );
    const damaged = manifest.splits.train.shards[1].file;
    await fixture.ctx.store.putBytes(
      `datasets/fm4-damaged/shards/${damaged}`,
      new TextEncoder().encode('not a tar file'),
    );
    fixture.ctx.data.mode = 'streaming';
    await fixture.createRun('damaged', config, 'fm4-damaged', IMAGES);
    expect(await train(shard0('damaged'))).toMatchObject({ outcome: 'trained', stepsTrained: 2 });
    const metrics = await lines('damaged');
    const last = metrics[metrics.length - 1];
    expect(last).toMatchObject({ dataMode: 'streaming', skippedShards: 1 });
    expect(last.skippedImages).toBeGreaterThanOrEqual(0);
    expect(
      fixture.logs.some((line) => line.startsWith('unusable data skipped:') && line.includes(damaged)),
    ).toBe(true);
  });

  it('auto holds a split in memory when its decoded size fits the budget, else streams it', () => {
    const manifest = {
      name: 'big',
      version: 1 as const,
      imageSize: { width: 100, height: 100, channels: 3 as const },
      classes: ['a'],
      splits: { train: { count: 1000, shards: [] } },
      createdAt: new Date().toISOString(),
    };
    // 1000 images of 100 × 100 × 3 bytes: 30 MB decoded.
    expect(chooseDataMode({ mode: 'auto', memoryBudgetBytes: 40e6 }, manifest, 'train')).toMatchObject({
      mode: 'memory',
      decodedBytes: 30e6,
    });
    const streamed = chooseDataMode({ mode: 'auto', memoryBudgetBytes: 20e6 }, manifest, 'train');
    expect(streamed).toMatchObject({ mode: 'streaming', decodedBytes: 30e6 });
    expect(streamed.reason).toMatch(/exceeds the 19 MiB budget/);
    expect(chooseDataMode({ mode: 'memory', memoryBudgetBytes: 1 }, manifest, 'train').mode).toBe('memory');
  });
});
