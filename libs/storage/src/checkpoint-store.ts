import { createHash } from 'node:crypto';
import { encodeJson, isNotFound, JSON_CONTENT_TYPE, readJson, type ArtifactStore } from './artifact-store';
import { ChecksumMismatchError, NotFoundError, StorageError, UnreadableObjectError } from './errors';
import {
  checkpointFolderFileKey,
  checkpointPrefix,
  checkpointsPrefix,
  COMMIT_MARKER_FILE,
  committedStepFromKey,
  formatStep,
  validateFileName,
  validateId,
} from './keys';

/*
 * Object stores have no rename, so a checkpoint is made atomic by ordering: every file is written
 * first and the COMMITTED record last. Readers only trust directories that have the record, and
 * the record's sizes and sha256s catch files that were overwritten or damaged afterwards.
 */

export const CHECKPOINT_COMMIT_FORMAT = 'dinoq.checkpoint-commit/1';

export interface CommittedFile {
  size: number;
  sha256: string;
}

/** The content of `runs/<runId>/checkpoints/<step>/COMMITTED`. */
export interface CheckpointCommit {
  format: typeof CHECKPOINT_COMMIT_FORMAT;
  runId: string;
  step: number;
  committedAt: string;
  files: Record<string, CommittedFile>;
}

export interface CommitResult {
  /** True when the step was committed before this call; nothing was written then. */
  alreadyCommitted: boolean;
  commit: CheckpointCommit;
}

export interface LoadedCheckpoint {
  step: number;
  commit: CheckpointCommit;
  files: Record<string, Uint8Array>;
}

/**
 * Where a set of checkpoint files and its COMMITTED record live: a run's checkpoint of a step, or a
 * slice's result of a round (committed the same way, read only by the round's merge).
 */
export interface CheckpointLocation {
  runId: string;
  /** The step the files are at; the commit record repeats it. */
  step: number;
  /** The folder that holds the files and the record. */
  prefix: string;
  /** How errors name it, e.g. `run-1@000000100`. */
  label: string;
}

/** The checkpoint of a run at a step: runs/<id>/checkpoints/<step>/. */
export function checkpointAt(runId: string, step: number): CheckpointLocation {
  return { runId, step, prefix: checkpointPrefix(runId, step), label: `${runId}@${formatStep(step)}` };
}

const fileKeyIn = (at: CheckpointLocation, file: string) => checkpointFolderFileKey(at.prefix, file);

const commitKeyOf = (at: CheckpointLocation) => `${at.prefix}${COMMIT_MARKER_FILE}`;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Writes the checkpoint files of one step, then its COMMITTED record. A step that is already
 * committed is left untouched, so a training shard that runs twice cannot replace a checkpoint
 * that readers may already be using.
 */
export async function commitCheckpoint(
  store: ArtifactStore,
  runId: string,
  step: number,
  files: Record<string, Uint8Array>,
  now: () => Date = () => new Date(),
): Promise<CommitResult> {
  return commitAt(store, checkpointAt(runId, step), files, now);
}

/** `commitCheckpoint` at any checkpoint location. */
export async function commitAt(
  store: ArtifactStore,
  at: CheckpointLocation,
  files: Record<string, Uint8Array>,
  now: () => Date = () => new Date(),
): Promise<CommitResult> {
  const { runId, step } = at;
  const commitKey = commitKeyOf(at);
  const names = Object.keys(files).sort();
  if (names.length === 0) throw new StorageError(`checkpoint ${at.label} has no files to commit`);
  const fileKeys = names.map((name) => fileKeyIn(at, name));

  const existing = await readCommitAt(store, at);
  if (existing) return { alreadyCommitted: true, commit: existing };

  const committed: Record<string, CommittedFile> = {};
  for (const name of names) {
    const bytes = files[name];
    if (!(bytes instanceof Uint8Array)) {
      throw new StorageError(`checkpoint ${at.label}: file ${name} is not a Uint8Array`);
    }
    committed[name] = { size: bytes.byteLength, sha256: sha256Hex(bytes) };
  }
  await Promise.all(names.map((name, index) => store.putBytes(fileKeys[index], files[name])));
  const commit: CheckpointCommit = {
    format: CHECKPOINT_COMMIT_FORMAT,
    runId,
    step,
    committedAt: now().toISOString(),
    files: committed,
  };
  const written = await store.putBytesIfAbsent(commitKey, encodeJson(commitKey, commit), JSON_CONTENT_TYPE);
  if (!written) {
    // Another writer committed this step between our check and our write; theirs stands.
    const winner = await readCommitAt(store, at);
    if (!winner) throw new StorageError(`${commitKey}: conditional write refused but no commit record found`);
    return { alreadyCommitted: true, commit: winner };
  }
  return { alreadyCommitted: false, commit };
}

/**
 * The COMMITTED record of a step, or null when that step is not committed.
 * @throws UnreadableObjectError naming the key when the record is not JSON or not a commit record.
 */
export async function readCheckpointCommit(
  store: Pick<ArtifactStore, 'get'>,
  runId: string,
  step: number,
): Promise<CheckpointCommit | null> {
  return readCommitAt(store, checkpointAt(runId, step));
}

/** `readCheckpointCommit` at any checkpoint location. */
export async function readCommitAt(
  store: Pick<ArtifactStore, 'get'>,
  at: CheckpointLocation,
): Promise<CheckpointCommit | null> {
  const key = commitKeyOf(at);
  const value = await readJson(store, key);
  return value === null ? null : parseCommit(key, value, at.runId, at.step);
}

/** Committed steps of a run in ascending order; directories without COMMITTED are ignored. */
export async function listCommitted(store: Pick<ArtifactStore, 'list'>, runId: string): Promise<number[]> {
  const keys = await store.list(checkpointsPrefix(runId));
  return keys
    .map((key) => committedStepFromKey(runId, key))
    .filter((step) => step !== null)
    .sort((a, b) => a - b);
}

/** The newest committed step of a run, or null when it has none. */
export async function latestCommitted(
  store: Pick<ArtifactStore, 'list'>,
  runId: string,
): Promise<number | null> {
  const steps = await listCommitted(store, runId);
  return steps.length > 0 ? steps[steps.length - 1] : null;
}

/**
 * Reads the files of a committed checkpoint, every one or only those named in `only`, and checks
 * each against the COMMITTED record. Files that are not read are not checked either, so a reader
 * that needs the weights does not fail on damaged optimizer state.
 * @throws NotFoundError when the step is not committed, or a file (recorded or asked for) is missing.
 * @throws ChecksumMismatchError naming the file whose size or sha256 differs.
 */
export async function loadCheckpoint(
  store: Pick<ArtifactStore, 'get'>,
  runId: string,
  step: number,
  only?: readonly string[],
): Promise<LoadedCheckpoint> {
  return loadAt(store, checkpointAt(runId, step), only);
}

/** `loadCheckpoint` at any checkpoint location. */
export async function loadAt(
  store: Pick<ArtifactStore, 'get'>,
  at: CheckpointLocation,
  only?: readonly string[],
): Promise<LoadedCheckpoint> {
  const { step } = at;
  const commit = await readCommitAt(store, at);
  if (!commit) throw new NotFoundError(commitKeyOf(at));
  const names = only ?? Object.keys(commit.files);
  const entries = await Promise.all(
    names.map(async (name) => {
      const key = fileKeyIn(at, name);
      const expected = Object.hasOwn(commit.files, name) ? commit.files[name] : undefined;
      if (!expected) throw new NotFoundError(key);
      const bytes = await readFile(store, key);
      if (bytes.byteLength !== expected.size) {
        throw new ChecksumMismatchError(
          key,
          name,
          `size ${bytes.byteLength} bytes, committed ${expected.size}`,
        );
      }
      const actual = sha256Hex(bytes);
      if (actual !== expected.sha256) {
        throw new ChecksumMismatchError(key, name, `sha256 ${actual}, committed ${expected.sha256}`);
      }
      return [name, bytes] as const;
    }),
  );
  return { step, commit, files: Object.fromEntries(entries) };
}

/** The same NotFoundError from every store, so callers need not know which one they were given. */
async function readFile(store: Pick<ArtifactStore, 'get'>, key: string): Promise<Uint8Array> {
  try {
    return await store.get(key);
  } catch (error) {
    if (isNotFound(error) && !(error instanceof NotFoundError)) throw new NotFoundError(key);
    throw error;
  }
}

function parseCommit(key: string, value: unknown, runId: string, step: number): CheckpointCommit {
  const bad = (why: string) => new UnreadableObjectError(key, `not a valid commit record: ${why}`);
  if (typeof value !== 'object' || value === null) throw bad('not an object');
  const record = value as Partial<CheckpointCommit>;
  if (record.format !== CHECKPOINT_COMMIT_FORMAT) throw bad(`format is ${JSON.stringify(record.format)}`);
  if (record.runId !== runId || record.step !== step) {
    throw bad(`it names ${String(record.runId)}@${String(record.step)}, expected ${runId}@${step}`);
  }
  if (typeof record.files !== 'object' || record.files === null) throw bad('files is missing');
  for (const [name, file] of Object.entries(record.files)) {
    try {
      validateFileName('checkpointFile', name);
    } catch (error) {
      throw bad((error as Error).message);
    }
    if (
      !Number.isInteger(file?.size) ||
      typeof file?.sha256 !== 'string' ||
      !/^[0-9a-f]{64}$/.test(file.sha256)
    ) {
      throw bad(`entry for ${name} needs an integer size and a hex sha256`);
    }
  }
  validateId('runId', record.runId);
  return record as CheckpointCommit;
}
