import { DinoTrainer } from '@dinoq/dino';
import { attentionIndexSchema, evaluationReportSchema } from '@dinoq/jobs';
import {
  ChecksumMismatchError,
  attentionFileKey,
  checkpointFileKey,
  commitCheckpoint,
  evalKey,
} from '@dinoq/storage';
import { exportAttention } from '../src/compute/handlers/attention';
import { evaluate } from '../src/compute/handlers/evaluate';
import { importDataset } from '../src/compute/handlers/import-dataset';
import { serializeError } from '../src/compute/protocol';
import { startComputeFixture, tinyRunConfig, type ComputeFixture } from './compute-fixture';

/*
 * Evaluations and attention exports read a checkpoint's teacher weights and nothing else, so
 * damage to optimizer state (which only a resumed training shard needs) cannot fail them.
 */

const RUN = 'readers';
const STEP = 0;
const IMAGES = 16;
const config = tinyRunConfig(1);

describe('checkpoint readers', () => {
  let fixture: ComputeFixture;

  beforeAll(async () => {
    fixture = await startComputeFixture();
    const job = { datasetName: 'fm', source: { kind: 'fashion-mnist' as const, limit: IMAGES } };
    await importDataset(fixture.ctx, fixture.scope('import', job), job);
    await fixture.createRun(RUN, config, 'fm', IMAGES);
    const trainer = DinoTrainer.create(config, IMAGES);
    try {
      await commitCheckpoint(fixture.ctx.store, RUN, STEP, trainer.checkpointFiles());
    } finally {
      trainer.dispose();
    }
    await fixture.ctx.store.putBytes(
      checkpointFileKey(RUN, STEP, 'optimizer.safetensors'),
      new TextEncoder().encode('not safetensors'),
    );
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('evaluate ignores a corrupt optimizer.safetensors and writes its report', async () => {
    const job = {
      runId: RUN,
      evalId: 'e1',
      step: null,
      kinds: ['knn' as const],
      knn: { ks: [1, 5], temperature: 0.07, trainLimit: 12, testLimit: 4 },
      scheduled: false,
    };
    const report = await evaluate(fixture.ctx, fixture.scope('evaluate', job), job);
    expect(report).toMatchObject({ runId: RUN, step: STEP, network: 'teacher' });
    expect(report.knn!.map((score) => score.k)).toEqual([1, 5]);
    // What the API reads back and documents is what was written.
    const stored = await fixture.ctx.store.getJson(evalKey(RUN, 'e1'));
    expect(evaluationReportSchema.strict().parse(stored)).toMatchObject({ evalId: 'e1', step: STEP });
  });

  it('an attention export ignores it too', async () => {
    const job = {
      runId: RUN,
      exportId: 'a1',
      step: STEP,
      images: { split: 'test', indices: [0, 1] },
      threshold: 0.6,
    };
    const result = await exportAttention(fixture.ctx, fixture.scope('attention', job), job);
    expect(result).toMatchObject({ runId: RUN, step: STEP, images: 2 });
    expect(result.files).toBeGreaterThan(2);
    const index = await fixture.ctx.store.getJson(attentionFileKey(RUN, 'a1', 'index.json'));
    expect(attentionIndexSchema.strict().parse(index)).toMatchObject({ exportId: 'a1', step: STEP });
  });

  it('a corrupt teacher still fails the evaluation, for good, naming the file', async () => {
    const key = checkpointFileKey(RUN, STEP, 'teacher.safetensors');
    const teacher = await fixture.ctx.store.getBytes(key);
    try {
      teacher[teacher.length - 1] ^= 0xff;
      await fixture.ctx.store.putBytes(key, teacher);
      const job = { runId: RUN, evalId: 'e2', step: STEP, kinds: ['knn' as const], scheduled: false };
      const failure = evaluate(fixture.ctx, fixture.scope('evaluate', job), job);
      await expect(failure).rejects.toThrow(ChecksumMismatchError);
      const error = await failure.catch((e: unknown) => e);
      expect((error as Error).message).toContain('teacher.safetensors');
      expect(serializeError(error).unrecoverable).toBe(true);
    } finally {
      teacher[teacher.length - 1] ^= 0xff;
      await fixture.ctx.store.putBytes(key, teacher);
    }
  });
});
