import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '@dinoq/data';
import type { ArtifactStore } from '../src/artifact-store';
import { ChecksumMismatchError, InvalidIdError, NotFoundError } from '../src/errors';
import { backboneExportKey, checkpointFileKey, evalKey } from '../src/keys';
import { RunArtifacts } from '../src/run-artifacts';
import { startTestStore } from './s3-fixture';

/*
 * One repository over a bucket (workers) and over a local folder (the CLI): the same keys, the same
 * commit protocol, the same failures.
 */

interface Backend {
  store: ArtifactStore;
  stop(): Promise<void>;
}

const backends: [string, () => Promise<Backend>][] = [
  [
    'object storage',
    async () => {
      const s3 = await startTestStore();
      return { store: s3.store, stop: () => s3.stop() };
    },
  ],
  [
    'a local folder',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'dinoq-artifacts-'));
      return { store: new FsBlobStore(dir), stop: () => rm(dir, { recursive: true, force: true }) };
    },
  ],
];

const text = (value: string) => new TextEncoder().encode(value);
const files = (step: number) => ({
  'teacher.safetensors': text(`teacher ${step}`),
  'student.safetensors': text(`student ${step}`),
});

describe.each(backends)('RunArtifacts over %s', (_name, start) => {
  let backend: Backend;

  beforeAll(async () => {
    backend = await start();
  });

  afterAll(async () => {
    await backend?.stop();
  });

  it('commits checkpoints, lists them and loads all files or a subset', async () => {
    const run = new RunArtifacts(backend.store, 'run-a');
    expect(await run.newestCommit()).toBeNull();
    const first = await run.commitCheckpoint(20, files(20));
    expect(first).toMatchObject({ alreadyCommitted: false, commit: { runId: 'run-a', step: 20 } });
    await run.commitCheckpoint(4, files(4));
    expect(await run.committedSteps()).toEqual([4, 20]);
    expect(await run.newestCommit()).toBe(20);

    const again = await run.commitCheckpoint(20, { 'teacher.safetensors': text('other') });
    expect(again).toEqual({ alreadyCommitted: true, commit: first.commit });
    const all = await run.loadCheckpoint(20);
    expect(Object.keys(all.files).sort()).toEqual(['student.safetensors', 'teacher.safetensors']);
    expect(new TextDecoder().decode(all.files['teacher.safetensors'])).toBe('teacher 20');
    const teacher = await run.loadCheckpoint(4, ['teacher.safetensors']);
    expect(Object.keys(teacher.files)).toEqual(['teacher.safetensors']);
  });

  it('of concurrent commits of one step exactly one writes', async () => {
    const run = new RunArtifacts(backend.store, 'run-race');
    const results = await Promise.all([1, 2, 3, 4].map(() => run.commitCheckpoint(8, files(8))));
    expect(results.filter((result) => !result.alreadyCommitted)).toHaveLength(1);
    expect(new Set(results.map((result) => result.commit.committedAt)).size).toBe(1);
  });

  it('ignores a step whose COMMITTED record was never written', async () => {
    const run = new RunArtifacts(backend.store, 'run-partial');
    await backend.store.putBytes(checkpointFileKey('run-partial', 10, 'teacher.safetensors'), text('x'));
    expect(await run.committedSteps()).toEqual([]);
    await expect(run.loadCheckpoint(10)).rejects.toThrow(NotFoundError);
  });

  it('names the file that no longer matches its commit, and a missing one', async () => {
    const run = new RunArtifacts(backend.store, 'run-damaged');
    await run.commitCheckpoint(2, files(2));
    const key = checkpointFileKey('run-damaged', 2, 'student.safetensors');
    await backend.store.putBytes(key, text('student 3'));
    await expect(run.loadCheckpoint(2)).rejects.toThrow(ChecksumMismatchError);
    await expect(run.loadCheckpoint(2, ['teacher.safetensors'])).resolves.toMatchObject({ step: 2 });
    await expect(run.loadCheckpoint(2, ['optimizer.safetensors'])).rejects.toMatchObject({
      name: 'NotFoundError',
      key: checkpointFileKey('run-damaged', 2, 'optimizer.safetensors'),
    });
  });

  it('writes metrics per shard and per local segment and reads them back in key order', async () => {
    const run = new RunArtifacts(backend.store, 'run-m');
    await run.writeShardMetrics(1, [{ step: 2 }, { step: 3 }]);
    await run.writeShardMetrics(0, [{ step: 0 }, { step: 1 }]);
    await run.writeShardMetrics(0, [{ step: 0 }, { step: 1, retried: true }]);
    expect(await run.metricsFiles()).toEqual([
      { key: 'runs/run-m/metrics/000000.jsonl', text: '{"step":0}\n{"step":1,"retried":true}\n' },
      { key: 'runs/run-m/metrics/000001.jsonl', text: '{"step":2}\n{"step":3}\n' },
    ]);
    const local = new RunArtifacts(backend.store, 'run-local');
    await local.writeStepsMetrics(12, [{ step: 12 }]);
    await local.writeStepsMetrics(0, [{ step: 0 }]);
    expect((await local.metricsFiles()).map((file) => file.key)).toEqual([
      'runs/run-local/metrics/steps-000000000.jsonl',
      'runs/run-local/metrics/steps-000000012.jsonl',
    ]);
  });

  it('writes the exported backbone and evaluation reports under the run', async () => {
    const run = new RunArtifacts(backend.store, 'run-out');
    await run.writeBackbone(text('weights'));
    await run.writeEvaluation('e1', { evalId: 'e1', step: 4 });
    expect(new TextDecoder().decode(await backend.store.get(backboneExportKey('run-out')))).toBe('weights');
    expect(new TextDecoder().decode(await backend.store.get(evalKey('run-out', 'e1')))).toBe(
      '{\n  "evalId": "e1",\n  "step": 4\n}\n',
    );
  });

  it('refuses a run id that cannot be a key segment', () => {
    expect(() => new RunArtifacts(backend.store, '../etc')).toThrow(InvalidIdError);
  });
});

it('keeps a local run in the bucket layout on disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dinoq-artifacts-layout-'));
  try {
    const run = new RunArtifacts(new FsBlobStore(dir), 'r1');
    await run.commitCheckpoint(3, files(3));
    expect((await readdir(join(dir, 'runs/r1/checkpoints/000000003'))).sort()).toEqual([
      'COMMITTED',
      'student.safetensors',
      'teacher.safetensors',
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
