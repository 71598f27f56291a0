import { InvalidIdError } from '../src/errors';
import {
  attentionFileKey,
  backboneExportKey,
  checkpointCommitKey,
  checkpointFileKey,
  committedStepFromKey,
  datasetManifestKey,
  datasetShardKey,
  evalKey,
  featuresKey,
  formatStep,
  metricsKey,
  runRecordKey,
} from '../src/keys';

function expectInvalid(build: () => unknown, field: string): void {
  let caught: unknown;
  try {
    build();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidIdError);
  expect((caught as InvalidIdError).field).toBe(field);
  expect((caught as Error).message).toContain(field);
}

describe('storage key layout', () => {
  it('builds every documented key', () => {
    expect(datasetManifestKey('imagenette')).toBe('datasets/imagenette/manifest.json');
    expect(datasetShardKey('imagenette', 'train-000003.tar')).toBe(
      'datasets/imagenette/shards/train-000003.tar',
    );
    expect(runRecordKey('run-1')).toBe('runs/run-1/run.json');
    expect(checkpointFileKey('run-1', 1200, 'student.safetensors')).toBe(
      'runs/run-1/checkpoints/000001200/student.safetensors',
    );
    expect(checkpointCommitKey('run-1', 0)).toBe('runs/run-1/checkpoints/000000000/COMMITTED');
    expect(metricsKey('run-1', 7)).toBe('runs/run-1/metrics/000007.jsonl');
    expect(metricsKey('run-1', 'merge_2')).toBe('runs/run-1/metrics/merge_2.jsonl');
    expect(evalKey('run-1', 'knn-000001200')).toBe('runs/run-1/evals/knn-000001200.json');
    expect(attentionFileKey('run-1', 'exp1', 'img-0003-head-2.png')).toBe(
      'runs/run-1/attention/exp1/img-0003-head-2.png',
    );
    expect(backboneExportKey('run-1')).toBe('runs/run-1/export/backbone.safetensors');
    expect(featuresKey('run-1', 42, 'val')).toBe('runs/run-1/features/000000042/val.bin');
  });

  it('pads steps so that key order is step order', () => {
    const steps = [5, 40, 300, 999_999_999];
    const keys = steps.map((step) => formatStep(step));
    expect([...keys].sort()).toEqual(keys);
    expectInvalid(() => formatStep(-1), 'step');
    expectInvalid(() => formatStep(1.5), 'step');
    expectInvalid(() => formatStep(1_000_000_000), 'step');
  });

  it('rejects path-like, empty and over-long ids naming the field', () => {
    expectInvalid(() => runRecordKey('../x'), 'runId');
    expectInvalid(() => runRecordKey('a/b'), 'runId');
    expectInvalid(() => runRecordKey(''), 'runId');
    expectInvalid(() => runRecordKey('a'.repeat(65)), 'runId');
    expectInvalid(() => runRecordKey('Run1'), 'runId');
    expectInvalid(() => runRecordKey('-x'), 'runId');
    expectInvalid(() => runRecordKey(undefined as unknown as string), 'runId');
    expectInvalid(() => datasetManifestKey('..'), 'datasetName');
    expectInvalid(() => evalKey('run-1', 'a\\b'), 'evalId');
    expectInvalid(() => featuresKey('run-1', 1, 'val/../x'), 'split');
    expectInvalid(() => checkpointFileKey('run-1', 1, '../teacher.bin'), 'checkpointFile');
    expectInvalid(() => checkpointFileKey('run-1', 1, '.hidden'), 'checkpointFile');
    expectInvalid(() => datasetShardKey('ds', 'sub/train.tar'), 'shardFile');
    expect(runRecordKey('a'.repeat(64))).toBe(`runs/${'a'.repeat(64)}/run.json`);
  });

  it('names the reason in the message', () => {
    expect(() => runRecordKey('')).toThrow(/must not be empty/);
    expect(() => runRecordKey('a/b')).toThrow(/path separators/);
    expect(() => runRecordKey('x'.repeat(70))).toThrow(/at most 64 characters/);
  });

  it('reserves COMMITTED for the commit record', () => {
    expectInvalid(() => checkpointFileKey('run-1', 3, 'COMMITTED'), 'checkpointFile');
  });

  it('recognises commit records of one run only', () => {
    expect(committedStepFromKey('run-1', 'runs/run-1/checkpoints/000000300/COMMITTED')).toBe(300);
    expect(committedStepFromKey('run-1', 'runs/run-1/checkpoints/000000300/teacher.bin')).toBeNull();
    expect(committedStepFromKey('run-1', 'runs/run-10/checkpoints/000000300/COMMITTED')).toBeNull();
    expect(committedStepFromKey('run-1', 'runs/run-1/checkpoints/300/COMMITTED')).toBeNull();
  });
});
