import { resolveRunConfig } from '@dinoq/config';
import { decodeSafetensors } from '@dinoq/dino';
import { roundPrefix, RunArtifacts, backboneExportKey, checkpointCommitKey } from '@dinoq/storage';
import type { MergeRoundJob, TrainShardJob, TrainSliceJob } from '@dinoq/jobs';
import { importDataset } from '../src/compute/handlers/import-dataset';
import { mergeRound } from '../src/compute/handlers/merge-round';
import { trainShard } from '../src/compute/handlers/train-shard';
import { trainSlice } from '../src/compute/handlers/train-slice';
import { startComputeFixture, tinyRunConfig, type ComputeFixture } from './compute-fixture';

/*
 * The round handlers against a real s3rver: a slice trains its lane of the round's steps and
 * commits a result, the merge commits the next checkpoint and hands back the next round.
 */

const IMAGES = 16;
// 16 images in batches of 8: 2 steps an epoch, 4 steps in all.
const EPOCHS = 2;

function roundsConfig(slices: number, syncEverySteps: number, outer?: { lr: number; momentum: number }) {
  return resolveRunConfig('fmnist-tiny', {
    ...tinyRunConfig(EPOCHS),
    parallel: { slices, syncEverySteps, ...(outer ? { outer } : {}) },
  });
}

const tensors = (bytes: Uint8Array) =>
  [...decodeSafetensors(bytes).tensors].map(([name, t]) => [name, Array.from(t.data)] as const);

describe('rounds', () => {
  let fixture: ComputeFixture;
  const slice = (job: TrainSliceJob) => trainSlice(fixture.ctx, fixture.scope('train-slice', job), job);
  const merge = (job: MergeRoundJob) => mergeRound(fixture.ctx, fixture.scope('merge-round', job), job);
  const shard = (job: TrainShardJob) => trainShard(fixture.ctx, fixture.scope('train-shard', job), job);

  beforeAll(async () => {
    fixture = await startComputeFixture();
    const job = { datasetName: 'fm', source: { kind: 'fashion-mnist' as const, limit: IMAGES } };
    await importDataset(fixture.ctx, fixture.scope('import', job), job);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('one slice per round is sequential training: every checkpoint file is byte-identical to the shards’', async () => {
    const sequential = tinyRunConfig(EPOCHS);
    await fixture.createRun('shards', sequential, 'fm', IMAGES);
    for (const n of [0, 1]) await shard({ runId: 'shards', shard: n, fromStep: 2 * n, toStep: 2 * n + 2 });

    // The same run trained in rounds of one slice of 2 steps (a run resized to one slice).
    const record = await fixture.createRun('one-slice', roundsConfig(2, 2), 'fm', IMAGES);
    await fixture.ctx.runs.update('one-slice', () => ({
      rounds: true,
      slices: 1,
      round: null,
      config: sequential,
    }));
    expect(record.rounds).toBe(true);
    for (const fromStep of [0, 2]) {
      const round = { runId: 'one-slice', fromStep, toStep: fromStep + 2, slices: 1 };
      expect(await slice({ ...round, slice: 0 })).toMatchObject({ outcome: 'trained', stepsTrained: 2 });
      const merged = await merge(round);
      expect(merged).toMatchObject({ outcome: 'merged' });
      expect(merged.next?.data ?? null).toEqual(
        fromStep === 0 ? { runId: 'one-slice', fromStep: 2, toStep: 4, slices: 1 } : null,
      );
    }
    const a = new RunArtifacts(fixture.ctx.store, 'shards');
    const b = new RunArtifacts(fixture.ctx.store, 'one-slice');
    expect(await b.committedSteps()).toEqual([2, 4]);
    for (const step of [2, 4]) {
      const x = (await a.loadCheckpoint(step)).files;
      const y = (await b.loadCheckpoint(step)).files;
      expect(Object.keys(y).sort()).toEqual(Object.keys(x).sort());
      for (const name of Object.keys(x)) expect(Buffer.from(y[name]).equals(Buffer.from(x[name]))).toBe(true);
    }
    const backbone = (id: string) => fixture.ctx.store.getBytes(backboneExportKey(id));
    expect(Buffer.from(await backbone('one-slice')).equals(Buffer.from(await backbone('shards')))).toBe(true);
    expect((await fixture.ctx.runs.get('one-slice')).status).toBe('completed');
  });

  it('two slices take disjoint steps; with outer lr 1 and momentum 0 the merge is their average', async () => {
    await fixture.createRun('two-slices', roundsConfig(2, 1, { lr: 1, momentum: 0 }), 'fm', IMAGES);
    const created = await fixture.ctx.runs.get('two-slices');
    expect(created).toMatchObject({
      rounds: true,
      slices: 2,
      round: { index: 0, fromStep: 0, toStep: 2, slices: 2, slicesDone: [] },
    });
    const round = { runId: 'two-slices', fromStep: 0, toStep: 2, slices: 2 };
    for (const i of [1, 0])
      expect(await slice({ ...round, slice: i })).toMatchObject({ outcome: 'trained', stepsTrained: 1 });
    expect((await fixture.ctx.runs.get('two-slices')).round).toMatchObject({ slicesDone: [0, 1] });

    const artifacts = new RunArtifacts(fixture.ctx.store, 'two-slices');
    const metrics = await artifacts.metricsFiles();
    expect(
      metrics.map((file) => [file.key.split('/').pop(), JSON.parse(file.text.split('\n')[0]).step]),
    ).toEqual([
      ['round-000000000-slice-0-of-2.jsonl', 0],
      ['round-000000000-slice-1-of-2.jsonl', 1],
    ]);
    const results = await Promise.all(
      [0, 1].map(async (i) => (await artifacts.loadSliceResult({ ...round, slice: i })).files),
    );

    const merged = await merge(round);
    expect(merged).toMatchObject({ outcome: 'merged', status: 'running' });
    expect(merged.next).toMatchObject({
      kind: 'round',
      jobId: 'two-slices-g0-round-2',
      data: { runId: 'two-slices', fromStep: 2, toStep: 4, slices: 2 },
      slices: [
        { jobId: 'two-slices-g0-round-2-slice-0-of-2' },
        { jobId: 'two-slices-g0-round-2-slice-1-of-2' },
      ],
    });
    const committed = (await artifacts.loadCheckpoint(2)).files;
    for (const file of ['student.safetensors', 'teacher.safetensors']) {
      const [x, y] = results.map((r) => tensors(r[file]));
      const mean = x.map(([name, v], t) => [
        name,
        v.map((value, k) => Math.fround((value + y[t][1][k]) / 2)),
      ]);
      expect(tensors(committed[file])).toEqual(mean);
    }
    expect(JSON.parse(new TextDecoder().decode(committed['state.json']))).toMatchObject({
      step: 2,
      epoch: 1,
    });
    expect(await fixture.ctx.store.list(roundPrefix('two-slices', 0))).toEqual([]);
    expect(await fixture.ctx.runs.get('two-slices')).toMatchObject({
      committedSteps: [2],
      lastCommittedStep: 2,
      round: { index: 1, fromStep: 2, toStep: 4, slices: 2, slicesDone: [] },
    });

    // A duplicate merge (a retry, or a flow re-created after a wipe) changes nothing and names the same next round.
    const marker = await fixture.ctx.store.etag(checkpointCommitKey('two-slices', 2));
    const again = await merge(round);
    expect(again).toMatchObject({ outcome: 'already-committed', next: { jobId: 'two-slices-g0-round-2' } });
    expect(await fixture.ctx.store.etag(checkpointCommitKey('two-slices', 2))).toBe(marker);
    // A slice of the merged round is stale and trains nothing.
    expect(await slice({ ...round, slice: 0 })).toMatchObject({
      outcome: 'skipped',
      detail: 'the round is merged already',
    });
  });

  it('a merge refuses to run while a slice has no committed result', async () => {
    await fixture.createRun('missing', roundsConfig(2, 1), 'fm', IMAGES);
    const round = { runId: 'missing', fromStep: 0, toStep: 2, slices: 2 };
    await slice({ ...round, slice: 0 });
    await expect(merge(round)).rejects.toThrow(
      /slice 1 of round 0\.\.2 \(2 slices\) has no committed result/,
    );
    expect(await new RunArtifacts(fixture.ctx.store, 'missing').committedSteps()).toEqual([]);
  });
});
