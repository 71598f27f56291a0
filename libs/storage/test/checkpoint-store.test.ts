import {
  commitCheckpoint,
  latestCommitted,
  listCommitted,
  loadCheckpoint,
  readCheckpointCommit,
  sha256Hex,
} from '../src/checkpoint-store';
import { ChecksumMismatchError, InvalidIdError, NotFoundError, UnreadableObjectError } from '../src/errors';
import { checkpointCommitKey, checkpointFileKey } from '../src/keys';
import { startTestStore, type TestStore } from './s3-fixture';

const bytes = (...values: number[]) => new Uint8Array(values);

function checkpointFiles(seed: number): Record<string, Uint8Array> {
  return {
    'student.safetensors': bytes(seed, 1, 2, 3),
    'teacher.safetensors': bytes(seed, 4, 5),
    'state.json': new TextEncoder().encode(JSON.stringify({ step: seed })),
  };
}

describe('checkpoint commits on object storage', () => {
  let s3: TestStore;

  beforeAll(async () => {
    s3 = await startTestStore();
  });

  afterAll(async () => {
    await s3?.stop();
  });

  it('has no latest checkpoint before the first commit', async () => {
    expect(await latestCommitted(s3.store, 'fresh-run')).toBeNull();
    expect(await listCommitted(s3.store, 'fresh-run')).toEqual([]);
  });

  it('commits files then a record of their sizes and hashes, and finds the latest', async () => {
    const first = await commitCheckpoint(s3.store, 'run-a', 100, checkpointFiles(1));
    expect(first.alreadyCommitted).toBe(false);
    expect(first.commit.files['teacher.safetensors']).toEqual({ size: 3, sha256: sha256Hex(bytes(1, 4, 5)) });
    await commitCheckpoint(s3.store, 'run-a', 2000, checkpointFiles(2));
    await commitCheckpoint(s3.store, 'run-a', 300, checkpointFiles(3));

    expect(await listCommitted(s3.store, 'run-a')).toEqual([100, 300, 2000]);
    expect(await latestCommitted(s3.store, 'run-a')).toBe(2000);
    const record = await s3.store.getJson<{ files: object }>(checkpointCommitKey('run-a', 2000));
    expect(Object.keys(record!.files).sort()).toEqual([
      'state.json',
      'student.safetensors',
      'teacher.safetensors',
    ]);

    const loaded = await loadCheckpoint(s3.store, 'run-a', 300);
    expect(loaded.step).toBe(300);
    expect(Array.from(loaded.files['student.safetensors'])).toEqual([3, 1, 2, 3]);
    expect(JSON.parse(new TextDecoder().decode(loaded.files['state.json']))).toEqual({ step: 3 });
  });

  it('ignores a checkpoint directory without COMMITTED', async () => {
    await commitCheckpoint(s3.store, 'run-b', 10, checkpointFiles(10));
    // A writer that died after its files but before the record.
    for (const [name, content] of Object.entries(checkpointFiles(20))) {
      await s3.store.putBytes(checkpointFileKey('run-b', 20, name), content);
    }
    expect(await latestCommitted(s3.store, 'run-b')).toBe(10);
    expect(await listCommitted(s3.store, 'run-b')).toEqual([10]);
    expect(await readCheckpointCommit(s3.store, 'run-b', 20)).toBeNull();
    await expect(loadCheckpoint(s3.store, 'run-b', 20)).rejects.toThrow(NotFoundError);
    await expect(loadCheckpoint(s3.store, 'run-b', 20)).rejects.toThrow(checkpointCommitKey('run-b', 20));

    // Committing that step later (the retried shard) makes it visible.
    await commitCheckpoint(s3.store, 'run-b', 20, checkpointFiles(20));
    expect(await latestCommitted(s3.store, 'run-b')).toBe(20);
  });

  it('treats a second commit of a step as a no-op that overwrites nothing', async () => {
    const original = await commitCheckpoint(s3.store, 'run-c', 5, checkpointFiles(5));
    const again = await commitCheckpoint(s3.store, 'run-c', 5, {
      'student.safetensors': bytes(99, 99),
      'extra.bin': bytes(7),
    });
    expect(again.alreadyCommitted).toBe(true);
    expect(again.commit).toEqual(original.commit);
    expect(await s3.store.exists(checkpointFileKey('run-c', 5, 'extra.bin'))).toBe(false);
    const loaded = await loadCheckpoint(s3.store, 'run-c', 5);
    expect(Array.from(loaded.files['student.safetensors'])).toEqual([5, 1, 2, 3]);
  });

  it('fails the sha256 check of a corrupted file, naming it', async () => {
    await commitCheckpoint(s3.store, 'run-d', 7, checkpointFiles(7));
    const key = checkpointFileKey('run-d', 7, 'teacher.safetensors');
    await s3.store.putBytes(key, bytes(7, 4, 6));
    const failure = loadCheckpoint(s3.store, 'run-d', 7);
    await expect(failure).rejects.toThrow(ChecksumMismatchError);
    await expect(failure).rejects.toThrow(/teacher\.safetensors.*sha256/);
    await expect(failure).rejects.toMatchObject({ file: 'teacher.safetensors', key });

    await s3.store.putBytes(key, bytes(7, 4));
    await expect(loadCheckpoint(s3.store, 'run-d', 7)).rejects.toThrow(/teacher\.safetensors.*size 2 bytes/);

    await s3.store.delete(key);
    await expect(loadCheckpoint(s3.store, 'run-d', 7)).rejects.toMatchObject({ name: 'NotFoundError', key });
  });

  it('reads and checks only the files asked for, so damage elsewhere does not matter', async () => {
    await commitCheckpoint(s3.store, 'run-g', 3, checkpointFiles(3));
    await s3.store.putBytes(checkpointFileKey('run-g', 3, 'student.safetensors'), bytes(0, 0, 0, 0));
    await expect(loadCheckpoint(s3.store, 'run-g', 3)).rejects.toThrow(ChecksumMismatchError);
    const loaded = await loadCheckpoint(s3.store, 'run-g', 3, ['teacher.safetensors']);
    expect(Object.keys(loaded.files)).toEqual(['teacher.safetensors']);
    expect(Array.from(loaded.files['teacher.safetensors'])).toEqual([3, 4, 5]);
    await expect(loadCheckpoint(s3.store, 'run-g', 3, ['optimizer.safetensors'])).rejects.toMatchObject({
      name: 'NotFoundError',
      key: checkpointFileKey('run-g', 3, 'optimizer.safetensors'),
    });
  });

  it('reports a COMMITTED record that is not JSON or not a commit record as unreadable, naming its key', async () => {
    const key = checkpointCommitKey('run-h', 4);
    await s3.store.putBytes(key, new TextEncoder().encode('\u0000garbage{'));
    await expect(readCheckpointCommit(s3.store, 'run-h', 4)).rejects.toThrow(UnreadableObjectError);
    await expect(readCheckpointCommit(s3.store, 'run-h', 4)).rejects.toMatchObject({ key });
    await s3.store.putJson(key, {
      format: 'dinoq.checkpoint-commit/1',
      runId: 'run-h',
      step: 4,
      files: { '../x': {} },
    });
    await expect(loadCheckpoint(s3.store, 'run-h', 4)).rejects.toMatchObject({
      name: 'UnreadableObjectError',
      key,
      message: expect.stringMatching(/not a valid commit record/),
    });
  });

  it('rejects invalid run ids, file names and empty checkpoints before writing', async () => {
    await expect(commitCheckpoint(s3.store, '../x', 1, checkpointFiles(1))).rejects.toMatchObject({
      name: 'InvalidIdError',
      field: 'runId',
    });
    await expect(commitCheckpoint(s3.store, 'run-e', 1, { 'a/b': bytes(1) })).rejects.toThrow(InvalidIdError);
    await expect(commitCheckpoint(s3.store, 'run-e', 1, { COMMITTED: bytes(1) })).rejects.toThrow(/reserved/);
    await expect(commitCheckpoint(s3.store, 'run-e', -1, checkpointFiles(1))).rejects.toThrow(/step/);
    await expect(commitCheckpoint(s3.store, 'run-e', 1, {})).rejects.toThrow(/no files/);
    expect(await s3.store.list('runs/run-e/')).toEqual([]);
    await expect(latestCommitted(s3.store, 'a/b')).rejects.toThrow(InvalidIdError);
  });

  it('rejects a commit record that belongs to another step', async () => {
    await commitCheckpoint(s3.store, 'run-f', 1, checkpointFiles(1));
    const copied = await s3.store.getBytes(checkpointCommitKey('run-f', 1));
    await s3.store.putBytes(checkpointCommitKey('run-f', 2), copied);
    await expect(loadCheckpoint(s3.store, 'run-f', 2)).rejects.toThrow(
      /not a valid commit record.*expected run-f@2/,
    );
  });
});
