import { InvalidIdError } from './errors';

/*
 * The only module that knows where things live in the bucket. Every key is built from validated
 * parts, so a user-supplied value can never climb out of its prefix or collide with another one.
 *
 *   datasets/<name>/manifest.json
 *   datasets/<name>/shards/<file>
 *   runs/<runId>/run.json
 *   runs/<runId>/checkpoints/<step:9 digits>/<file>   and .../COMMITTED, written last
 *   runs/<runId>/rounds/<fromStep:9 digits>/<slices>-<slice>/<file>  a slice's result, and COMMITTED
 *   runs/<runId>/metrics/<shard>.jsonl                 (a local run: steps-<first step:9 digits>.jsonl)
 *   runs/<runId>/evals/<evalId>.json
 *   runs/<runId>/attention/<exportId>/<file>
 *   runs/<runId>/export/backbone.safetensors
 *   runs/<runId>/features/<step:9 digits>/<split>.bin
 *   sweeps/<sweepId>/sweep.json                        a sweep's request, trials and status
 *   sweeps/<sweepId>/report.json                       its trials' rung results and the best so far
 */

/**
 * Identifiers used as one key segment (run ids, dataset names, eval ids, ...): the one rule, also
 * behind libs/jobs' zod id schema, so an id a payload accepts is always a valid key segment.
 */
export const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const ID_RULE = "1-64 lowercase letters, digits, '-' and '_', starting with a letter or digit";
const ID_MAX_LENGTH = 64;
const FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const FILE_NAME_MAX_LENGTH = 128;
const STEP_DIGITS = 9;
const MAX_STEP = 10 ** STEP_DIGITS - 1;
const SHARD_INDEX_DIGITS = 6;

/** Written last into a checkpoint directory; a checkpoint without it does not exist. */
export const COMMIT_MARKER_FILE = 'COMMITTED';

function describeBadName(value: string, maxLength: number, allowed: string): string {
  if (value.length === 0) return 'must not be empty';
  if (value.length > maxLength) return `must be at most ${maxLength} characters (got ${value.length})`;
  if (value.includes('/') || value.includes('\\')) return 'must not contain path separators';
  if (value.startsWith('.')) return 'must not start with a dot';
  return `may only contain ${allowed}, starting with a letter or digit`;
}

/** Checks an identifier used as one key segment against `ID_PATTERN`, naming the field. */
export function validateId(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidIdError(field, value, 'must be a string');
  if (!ID_PATTERN.test(value)) {
    throw new InvalidIdError(
      field,
      value,
      describeBadName(value, ID_MAX_LENGTH, "lowercase letters, digits, '-' and '_'"),
    );
  }
  return value;
}

/** Checks a file name inside a key prefix: no separators, no leading dot, at most 128 characters. */
export function validateFileName(field: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidIdError(field, value, 'must be a string');
  if (!FILE_NAME_PATTERN.test(value)) {
    throw new InvalidIdError(
      field,
      value,
      describeBadName(value, FILE_NAME_MAX_LENGTH, "letters, digits, '.', '-' and '_'"),
    );
  }
  return value;
}

/** Zero-pads so that lexicographic key order is step order. */
export function formatStep(step: number, field = 'step'): string {
  if (!Number.isInteger(step) || step < 0 || step > MAX_STEP) {
    throw new InvalidIdError(field, step, `must be an integer in [0, ${MAX_STEP}]`);
  }
  return String(step).padStart(STEP_DIGITS, '0');
}

function formatShard(shard: number | string): string {
  if (typeof shard === 'number') {
    if (!Number.isInteger(shard) || shard < 0) {
      throw new InvalidIdError('shard', shard, 'must be a non-negative integer or an id');
    }
    return String(shard).padStart(SHARD_INDEX_DIGITS, '0');
  }
  return validateId('shard', shard);
}

// --- datasets ---------------------------------------------------------------------------------

/** Parent of every dataset; list it to find manifests (datasets/<name>/manifest.json). */
export function datasetsPrefix(): string {
  return 'datasets/';
}

export function datasetPrefix(name: string): string {
  return `datasets/${validateId('datasetName', name)}/`;
}

export function datasetManifestKey(name: string): string {
  return `${datasetPrefix(name)}manifest.json`;
}

export function datasetShardsPrefix(name: string): string {
  return `${datasetPrefix(name)}shards/`;
}

export function datasetShardKey(name: string, file: string): string {
  return `${datasetShardsPrefix(name)}${validateFileName('shardFile', file)}`;
}

/**
 * The random-init and raw-pixel baseline scores of one evaluation protocol on this dataset
 * (`protocol`: an id naming the evaluation kind and a digest of its settings); kept beside the
 * dataset because every run evaluated on it shares them.
 */
export function baselineKey(name: string, protocol: string): string {
  return `${datasetPrefix(name)}baselines/${validateId('baselineProtocol', protocol)}.json`;
}

// --- runs -------------------------------------------------------------------------------------

/** Parent of every run; list it to find run records (runs/<id>/run.json). */
export function runsPrefix(): string {
  return 'runs/';
}

export function runPrefix(runId: string): string {
  return `runs/${validateId('runId', runId)}/`;
}

export function runRecordKey(runId: string): string {
  return `${runPrefix(runId)}run.json`;
}

/** What a run was created with and never changes: the source a broken run.json is rebuilt from. */
export function runSpecKey(runId: string): string {
  return `${runPrefix(runId)}spec.json`;
}

export function checkpointsPrefix(runId: string): string {
  return `${runPrefix(runId)}checkpoints/`;
}

export function checkpointPrefix(runId: string, step: number): string {
  return `${checkpointsPrefix(runId)}${formatStep(step)}/`;
}

export function checkpointFileKey(runId: string, step: number, file: string): string {
  return checkpointFolderFileKey(checkpointPrefix(runId, step), file);
}

/** A file in a folder committed like a checkpoint (a run's checkpoint, a slice's result). */
export function checkpointFolderFileKey(prefix: string, file: string): string {
  const name = validateFileName('checkpointFile', file);
  if (name === COMMIT_MARKER_FILE) {
    throw new InvalidIdError(
      'checkpointFile',
      file,
      `${COMMIT_MARKER_FILE} is reserved for the commit record`,
    );
  }
  return `${prefix}${name}`;
}

export function checkpointCommitKey(runId: string, step: number): string {
  return `${checkpointPrefix(runId, step)}${COMMIT_MARKER_FILE}`;
}

/** Everything the slices of the round starting at `fromStep` stored, of every slice count. */
export function roundPrefix(runId: string, fromStep: number): string {
  return `${runPrefix(runId)}rounds/${formatStep(fromStep, 'fromStep')}/`;
}

/** Where slice `slice` of `slices` of the round starting at `fromStep` keeps its result. */
export function sliceResultPrefix(runId: string, fromStep: number, slices: number, slice: number): string {
  if (!Number.isInteger(slices) || slices < 1 || !Number.isInteger(slice) || slice < 0 || slice >= slices) {
    throw new InvalidIdError('slice', `${slice}/${slices}`, 'must be 0 ≤ slice < slices');
  }
  return `${roundPrefix(runId, fromStep)}${slices}-${slice}/`;
}

const COMMIT_KEY_TAIL = new RegExp(`^(\\d{${STEP_DIGITS}})/${COMMIT_MARKER_FILE}$`);

/** The step of a listed `.../checkpoints/<step>/COMMITTED` key of this run, or null for any other key. */
export function committedStepFromKey(runId: string, key: string): number | null {
  const prefix = checkpointsPrefix(runId);
  if (!key.startsWith(prefix)) return null;
  const match = COMMIT_KEY_TAIL.exec(key.slice(prefix.length));
  return match ? Number(match[1]) : null;
}

export function metricsPrefix(runId: string): string {
  return `${runPrefix(runId)}metrics/`;
}

/** A number is a training-shard index (zero-padded to 6 digits); a string must be an id. */
export function metricsKey(runId: string, shard: number | string): string {
  return `${metricsPrefix(runId)}${formatShard(shard)}.jsonl`;
}

/**
 * The metrics of the steps a local run trained from `fromStep` up to its next commit: local runs
 * commit every n steps rather than by shard, so their files are named by the first step they hold.
 */
export function stepsMetricsKey(runId: string, fromStep: number): string {
  return metricsKey(runId, `steps-${formatStep(fromStep, 'fromStep')}`);
}

export function evalsPrefix(runId: string): string {
  return `${runPrefix(runId)}evals/`;
}

export function evalKey(runId: string, evalId: string): string {
  return `${evalsPrefix(runId)}${validateId('evalId', evalId)}.json`;
}

export function attentionPrefix(runId: string, exportId: string): string {
  return `${runPrefix(runId)}attention/${validateId('exportId', exportId)}/`;
}

export function attentionFileKey(runId: string, exportId: string, file: string): string {
  return `${attentionPrefix(runId, exportId)}${validateFileName('attentionFile', file)}`;
}

export function backboneExportKey(runId: string): string {
  return `${runPrefix(runId)}export/backbone.safetensors`;
}

export function featuresKey(runId: string, step: number, split: string): string {
  return `${runPrefix(runId)}features/${formatStep(step)}/${validateId('split', split)}.bin`;
}

// --- sweeps -----------------------------------------------------------------------------------

/** Parent of every sweep; list it to find sweep records (sweeps/<id>/sweep.json). */
export function sweepsPrefix(): string {
  return 'sweeps/';
}

export function sweepPrefix(sweepId: string): string {
  return `${sweepsPrefix()}${validateId('sweepId', sweepId)}/`;
}

/** What a sweep was created with, its trials and its status; written compare-and-swap. */
export function sweepRecordKey(sweepId: string): string {
  return `${sweepPrefix(sweepId)}sweep.json`;
}

/** The sweep's rung results, decisions and best trial, as its controller last derived them. */
export function sweepReportKey(sweepId: string): string {
  return `${sweepPrefix(sweepId)}report.json`;
}
