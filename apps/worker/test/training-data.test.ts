import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { importFashionMnist, importImageFolder, parseManifest, type DatasetManifest } from '@dinoq/data';
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

  /** 32 textured photos in 4 classes, each its own size and aspect, imported at their own sizes. */
  async function importOwnSizeFolder(name: string): Promise<DatasetManifest> {
    const src = await mkdtemp(path.join(tmpdir(), 'dinoq-own-size-'));
    try {
      for (let i = 0; i < IMAGES; i++) {
        const [width, height] = [20 + ((i * 13) % 41), 20 + ((i * 7) % 37)];
        const pixels = Buffer.alloc(width * height * 3);
        for (let k = 0; k < pixels.length; k++) pixels[k] = (k * 29 + i * 61 + ((k * i) % 11) * 7) & 0xff;
        const img = sharp(pixels, { raw: { width, height, channels: 3 } });
        const file = path.join(src, `class${i % 4}`, `${i}.${i % 2 ? 'jpg' : 'png'}`);
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, await (i % 2 ? img.jpeg() : img.png()).toBuffer());
      }
      const result = await importImageFolder({ srcDir: src, store: fixture.ctx.store, name, shardSize: 8 });
      return result.manifest;
    } finally {
      await rm(src, { recursive: true, force: true });
    }
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

  it('images of their own sizes: streamed and in-memory data give the same checkpoint bytes', async () => {
    const manifest = await importOwnSizeFolder('own32');
    expect(manifest.imageSize).toBeUndefined();
    fixture.ctx.data.mode = 'memory';
    await fixture.createRun('own-in-memory', config, 'own32', IMAGES);
    await train(shard0('own-in-memory'));
    fixture.ctx.data.mode = 'streaming';
    await fixture.createRun('own-streamed', config, 'own32', IMAGES);
    await train(shard0('own-streamed'));

    const [a, b] = await Promise.all([checkpoint('own-in-memory', 2), checkpoint('own-streamed', 2)]);
    expect(Object.keys(a).length).toBeGreaterThan(0);
    for (const name of Object.keys(a))
      expect([name, Buffer.from(b[name]).equals(Buffer.from(a[name]))]).toEqual([name, true]);
    expect((await lines('own-in-memory')).map((line) => line.dataMode)).toEqual(['memory', 'memory']);
    expect((await lines('own-streamed')).map((line) => line.dataMode)).toEqual(['streaming', 'streaming']);
    // The memory-or-streaming choice reads the decoded bytes the import recorded.
    expect(chooseDataMode({ mode: 'auto', memoryBudgetBytes: 1e9 }, manifest, 'train').decodedBytes).toBe(
      manifest.splits.train.decoded?.bytes,
    );
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
