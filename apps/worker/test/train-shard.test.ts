import { trainStepFlops } from '@dinoq/config';
import { parseMetricsFiles, stepMetricsLineSchema, type TrainShardJob } from '@dinoq/jobs';
import { RunArtifacts, backboneExportKey, runRecordKey } from '@dinoq/storage';
import { importDataset } from '../src/compute/handlers/import-dataset';
import { trainShard } from '../src/compute/handlers/train-shard';
import { startComputeFixture, tinyRunConfig, type ComputeFixture } from './compute-fixture';

/*
 * The shard handler against a real s3rver: what each outcome writes (metrics, checkpoint, run.json,
 * the exported backbone) and what it leaves alone.
 */

const IMAGES = 16;
// 16 images in batches of 8: 2 steps an epoch, 4 steps in all, shards of 2 steps.
const config = tinyRunConfig(2);
const shard = (runId: string, n: number): TrainShardJob => ({
  runId,
  shard: n,
  fromStep: 2 * n,
  toStep: 2 * n + 2,
});

describe('trainShard', () => {
  let fixture: ComputeFixture;
  const run = (job: TrainShardJob) => trainShard(fixture.ctx, fixture.scope('train-shard', job), job);

  beforeAll(async () => {
    fixture = await startComputeFixture();
    const job = { datasetName: 'fm', source: { kind: 'fashion-mnist' as const, limit: IMAGES } };
    await importDataset(fixture.ctx, fixture.scope('import', job), job);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('trains, writes the metrics, commits, records the commit and names the next shard', async () => {
    await fixture.createRun('two', config, 'fm', IMAGES);
    const artifacts = new RunArtifacts(fixture.ctx.store, 'two');

    const trained = await run(shard('two', 0));
    expect(trained).toEqual({
      outcome: 'trained',
      runId: 'two',
      shard: 0,
      committedStep: 2,
      status: 'running',
      next: { shard: 1, fromStep: 2, toStep: 4, generation: 0 },
      stepsTrained: 2,
      trainFlopsPerSecond: expect.any(Number),
    });
    expect(await artifacts.committedSteps()).toEqual([2]);
    const files = await artifacts.metricsFiles();
    expect(files.map((file) => file.key)).toEqual(['runs/two/metrics/000000.jsonl']);
    const lines = files[0].text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as unknown);
    const parsed = lines.map((line) => stepMetricsLineSchema.strict().parse(line));
    expect(parsed.map((line) => line.step)).toEqual([0, 1]);
    // The speed the worker announces: the step's FLOPs at the second step's throughput (the first warms up).
    expect(trained.trainFlopsPerSecond).toBeCloseTo(
      (trainStepFlops(config) / config.train.batchSize) * parsed[1].imagesPerSecond,
      -3,
    );
    const record = await fixture.ctx.runs.get('two');
    expect(record).toMatchObject({
      status: 'running',
      lastCommittedStep: 2,
      committedSteps: [2],
      workerId: 'w',
      backend: fixture.ctx.backend.name,
      latestMetrics: lines[1],
      error: null,
    });
    expect(await fixture.ctx.store.exists(backboneExportKey('two'))).toBe(false);

    // The same job again (a retry after the commit): nothing is trained or written but run.json.
    const etag = await fixture.ctx.store.etag(runRecordKey('two'));
    expect(await run(shard('two', 0))).toMatchObject({
      outcome: 'already-committed',
      committedStep: 2,
      stepsTrained: 0,
      next: { shard: 1, fromStep: 2, toStep: 4 },
    });
    expect(await artifacts.metricsFiles()).toEqual(files);
    expect(await fixture.ctx.store.etag(runRecordKey('two'))).not.toBe(etag);

    expect(await run(shard('two', 1))).toMatchObject({
      outcome: 'trained',
      committedStep: 4,
      status: 'completed',
      next: null,
    });
    const all = parseMetricsFiles(await artifacts.metricsFiles());
    expect(all.lines.map((line) => line.step)).toEqual([0, 1, 2, 3]);
    expect(all.skipped).toEqual([]);
    expect(await fixture.ctx.runs.get('two')).toMatchObject({ status: 'completed', committedSteps: [2, 4] });
    expect((await fixture.ctx.store.getBytes(backboneExportKey('two'))).byteLength).toBeGreaterThan(0);
  });

  it('marks a queued run running', async () => {
    await fixture.createRun('claimed', config, 'fm', IMAGES);
    await fixture.ctx.runs.update('claimed', () => ({
      status: 'queued',
      workerId: 'w',
      backend: fixture.ctx.backend.name,
    }));
    await run(shard('claimed', 0));
    expect(await fixture.ctx.runs.get('claimed')).toMatchObject({ status: 'running', workerId: 'w' });
  });

  it('cancels instead of training when cancellation was asked for', async () => {
    await fixture.createRun('cancelled', config, 'fm', IMAGES);
    await fixture.ctx.runs.update('cancelled', () => ({ cancelRequested: true }));
    expect(await run(shard('cancelled', 0))).toMatchObject({
      outcome: 'cancelled',
      status: 'cancelled',
      committedStep: null,
      next: null,
    });
    expect(await new RunArtifacts(fixture.ctx.store, 'cancelled').committedSteps()).toEqual([]);
    // Cancelling a cancelled run writes nothing.
    const etag = await fixture.ctx.store.etag(runRecordKey('cancelled'));
    await run(shard('cancelled', 0));
    expect(await fixture.ctx.store.etag(runRecordKey('cancelled'))).toBe(etag);
  });

  it('skips a shard of a failed run and leaves its record alone', async () => {
    await fixture.createRun('failed', config, 'fm', IMAGES);
    await fixture.ctx.runs.update('failed', () => ({ status: 'failed', error: 'out of memory' }));
    const etag = await fixture.ctx.store.etag(runRecordKey('failed'));
    expect(await run(shard('failed', 0))).toMatchObject({ outcome: 'skipped', detail: 'run is failed' });
    expect(await fixture.ctx.store.etag(runRecordKey('failed'))).toBe(etag);
  });
});
