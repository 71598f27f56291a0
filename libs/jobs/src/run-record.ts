import pLimit from 'p-limit';
import { roundAt, roundProgressOf } from './rounds';
import { z } from 'zod';
import type { RunConfig } from '@dinoq/config';
import {
  runRecordKey,
  runSpecKey,
  runsPrefix,
  UnreadableObjectError,
  validateId,
  type Versioned,
  type WriteCondition,
} from '@dinoq/storage';

export const runStatuses = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof runStatuses)[number];

/** Run-level retries a run gets unless its request says otherwise. */
export const DEFAULT_RUN_RETRY_BUDGET = 3;

/**
 * The durable state of a run, stored as runs/<runId>/run.json. S3 is the source of truth:
 * Redis can be wiped and the queue rebuilt from these records (see reconcile).
 */
export const roundProgressSchema = z.object({
  /** Rounds merged before this one. */
  index: z.number().int().min(0),
  fromStep: z.number().int().min(0),
  toStep: z.number().int().min(1),
  slices: z.number().int().min(1),
  slicesDone: z.array(z.number().int().min(0)),
});
export type RoundProgress = z.infer<typeof roundProgressSchema>;

export const runRecordSchema = z.object({
  runId: z.string(),
  datasetName: z.string(),
  datasetSize: z.number().int().min(1),
  config: z.record(z.string(), z.unknown()),
  device: z.enum(['gpu', 'cpu', 'any']),
  status: z.enum(runStatuses),
  totalSteps: z.number().int().min(1),
  itersPerEpoch: z.number().int().min(1),
  stepsPerShard: z.number().int().min(1),
  numShards: z.number().int().min(1),
  /** Bumped by every resume, so shard job ids of the new attempt never collide with old ones. */
  generation: z.number().int().min(0),
  lastCommittedStep: z.number().int().min(0).nullable(),
  committedSteps: z.array(z.number().int().min(0)),
  backend: z.string().nullable(),
  workerId: z.string().nullable(),
  latestMetrics: z.record(z.string(), z.unknown()).nullable(),
  cancelRequested: z.boolean(),
  error: z.string().nullable(),
  /** New attempts of a shard whose job failed for good that the run may still make on its own. */
  retryBudget: z.number().int().min(0).default(DEFAULT_RUN_RETRY_BUDGET),
  /** How many of them it has made; each bumps `generation`. */
  retries: z.number().int().min(0).default(0),
  /** Why the newest of them was needed. */
  lastRetryReason: z.string().nullable().default(null),
  /** Trained in DiLoCo rounds of slices (config.parallel.slices > 1 at creation), not in shards. */
  rounds: z.boolean().default(false),
  /** Slices of the next round to start; a resize changes it, the round in flight keeps its own. */
  slices: z.number().int().min(1).default(1),
  /** The round in flight: its steps, its slice count, which slices have committed their result. */
  round: roundProgressSchema.nullable().default(null),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export type RunRecord = Omit<z.infer<typeof runRecordSchema>, 'config'> & { config: RunConfig };

/** The facts a run is created with and that never change; stored once as runs/<id>/spec.json. */
const runSpecFields = [
  'runId',
  'datasetName',
  'datasetSize',
  'config',
  'device',
  'totalSteps',
  'itersPerEpoch',
  'stepsPerShard',
  'numShards',
  'retryBudget',
  'rounds',
  'createdAt',
] as const;
export const runSpecSchema = runRecordSchema.pick(
  Object.fromEntries(runSpecFields.map((field) => [field, true])) as {
    [K in (typeof runSpecFields)[number]]: true;
  },
);
export type RunSpec = Pick<RunRecord, (typeof runSpecFields)[number]>;

/** A new run's spec; `rounds` defaults to what the config asks for (more than one slice). */
export type NewRunSpec = Omit<RunSpec, 'rounds'> & Partial<Pick<RunSpec, 'rounds'>>;

/** The record of a run just created from its spec: nothing trained, retried or reported yet. */
export function newRunRecord(input: NewRunSpec, status: RunStatus = 'queued'): RunRecord {
  const spec: RunSpec = { ...input, rounds: input.rounds ?? (input.config.parallel?.slices ?? 1) > 1 };
  const slices = spec.rounds ? spec.config.parallel.slices : 1;
  const first = spec.rounds ? roundAt({ ...spec, slices }, 0) : null;
  return {
    ...spec,
    slices,
    round: first ? roundProgressOf(first, 0) : null,
    status,
    generation: 0,
    lastCommittedStep: null,
    committedSteps: [],
    backend: null,
    workerId: null,
    latestMetrics: null,
    cancelRequested: false,
    error: null,
    retries: 0,
    lastRetryReason: null,
    updatedAt: spec.createdAt,
  };
}

/** Shard n trains steps [n·stepsPerShard, min((n+1)·stepsPerShard, totalSteps)). */
export function shardRange(run: Pick<RunRecord, 'stepsPerShard' | 'totalSteps'>, shard: number) {
  const fromStep = shard * run.stepsPerShard;
  return { fromStep, toStep: Math.min(fromStep + run.stepsPerShard, run.totalSteps) };
}

/** The shard that continues from a committed step (null: nothing committed yet). */
export function nextShard(
  run: Pick<RunRecord, 'stepsPerShard' | 'totalSteps'>,
  committedStep: number | null,
): number | null {
  const step = committedStep ?? 0;
  if (step >= run.totalSteps) return null;
  return Math.floor(step / run.stepsPerShard);
}

/** BullMQ ids may not contain ':' nor be purely numeric. */
export function shardJobId(runId: string, generation: number, shard: number): string {
  return `${validateId('runId', runId)}-g${generation}-shard-${shard}`;
}

/** The merge job of the round starting at `fromStep`, the parent of the round's flow. */
export function roundJobId(runId: string, generation: number, fromStep: number): string {
  return `${validateId('runId', runId)}-g${generation}-round-${fromStep}`;
}

/** Slice `slice` of `slices` of the round starting at `fromStep`. */
export function sliceJobId(
  runId: string,
  generation: number,
  fromStep: number,
  slices: number,
  slice: number,
): string {
  return `${roundJobId(runId, generation, fromStep)}-slice-${slice}-of-${slices}`;
}

/** The generation a shard, merge or slice job id was made for (null: none of those). */
export function generationOfJobId(jobId: string): number | null {
  const match = /-g(\d+)-(?:shard-\d+|round-\d+(?:-slice-\d+-of-\d+)?)$/.exec(jobId);
  return match ? Number(match[1]) : null;
}

export interface RunRecordStore {
  getJsonVersioned<T>(key: string): Promise<Versioned<T> | null>;
  putJsonIf(key: string, value: unknown, condition: WriteCondition): Promise<string | null>;
  etag(key: string): Promise<string | null>;
  list(prefix: string): PromiseLike<string[]> | AsyncIterable<string>;
}

/** Told of every record this repository wrote, e.g. to keep a listing index in step with storage. */
export interface RunRecordObserver {
  recordWritten(record: RunRecord): Promise<void>;
}

export interface RunRepositoryOptions {
  observer?: RunRecordObserver;
  /** An observer failure never fails the write (storage is the truth); it is reported here. */
  onObserverError?: (error: Error, record: RunRecord) => void;
  /** Compare-and-swap attempts before an update gives up; each loses only to a newer write. */
  maxWriteAttempts?: number;
}

export class RunNotFoundError extends Error {
  constructor(readonly runId: string) {
    super(`run "${runId}" does not exist`);
    this.name = 'RunNotFoundError';
  }
}

/** An update lost the compare-and-swap race more times than it may retry. */
export class RunWriteConflictError extends Error {
  constructor(
    readonly runId: string,
    attempts: number,
  ) {
    super(`run "${runId}": run.json kept changing under ${attempts} attempts to update it`);
    this.name = 'RunWriteConflictError';
  }
}

const DEFAULT_WRITE_ATTEMPTS = 25;
const LIST_READS_IN_FLIGHT = 16;
const RUN_RECORD_KEY = /^runs\/([^/]+)\/run\.json$/;

function parseRecord(runId: string, raw: unknown): RunRecord {
  const parsed = runRecordSchema.safeParse(raw);
  if (!parsed.success) {
    const reason = parsed.error.issues
      .map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
      .join('; ');
    throw new UnreadableObjectError(runRecordKey(runId), `not a run record (${reason})`);
  }
  return parsed.data as RunRecord;
}

/** A short random pause so writers that lost a race do not collide again in lockstep. */
const backoff = (attempt: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 + attempt * 4)));

export interface VersionedUpdate<T> {
  store: Pick<RunRecordStore, 'putJsonIf'>;
  key: string;
  attempts: number;
  /** The object as stored now with its ETag; null when it does not exist. */
  read: () => Promise<Versioned<T> | null>;
  missing: () => Error;
  /** What to throw when every attempt lost its race. */
  conflict: () => Error;
  change: (value: T) => Partial<T> | null;
}

/**
 * A compare-and-swap update of one JSON record (run.json, sweep.json): re-reads, applies `change`,
 * writes only if nobody wrote in between, otherwise backs off and starts over with the newer
 * record. `change` may throw to refuse the transition it sees, and may run several times; null
 * writes nothing. `written` says whether this call wrote.
 */
export async function updateVersioned<T extends { updatedAt: string }>(
  update: VersionedUpdate<T>,
): Promise<{ value: T; written: boolean }> {
  for (let attempt = 1; attempt <= update.attempts; attempt += 1) {
    const current = await update.read();
    if (!current) throw update.missing();
    const patch = update.change(current.value);
    if (patch === null) return { value: current.value, written: false };
    const next = { ...current.value, ...patch, updatedAt: new Date().toISOString() };
    if ((await update.store.putJsonIf(update.key, next, { ifEtag: current.etag })) !== null)
      return { value: next, written: true };
    await backoff(attempt);
  }
  throw update.conflict();
}

/**
 * Reads and writes run records; the only code that knows where they live. Every write is a
 * compare-and-swap on the object's ETag, so writers on many machines (the API, every worker) never
 * lose each other's changes: the loser re-reads and applies its change again.
 */
export class RunRepository {
  private readonly maxWriteAttempts: number;

  constructor(
    private readonly store: RunRecordStore,
    private readonly options: RunRepositoryOptions = {},
  ) {
    this.maxWriteAttempts = options.maxWriteAttempts ?? DEFAULT_WRITE_ATTEMPTS;
  }

  /** @throws RunNotFoundError; UnreadableObjectError when run.json is not a run record. */
  async get(runId: string): Promise<RunRecord> {
    const r = await this.find(runId);
    if (!r) throw new RunNotFoundError(runId);
    return r;
  }

  /** @throws UnreadableObjectError when run.json exists but is not a run record. */
  async find(runId: string): Promise<RunRecord | null> {
    return (await this.findVersioned(runId))?.value ?? null;
  }

  /**
   * Writes the spec and then the record, each only if absent. False when the run exists: of
   * concurrent creates with one id exactly one returns true.
   */
  async create(record: RunRecord): Promise<boolean> {
    const valid = runRecordSchema.parse(record) as RunRecord;
    const spec = runSpecSchema.parse(valid);
    if ((await this.store.putJsonIf(runSpecKey(valid.runId), spec, { ifAbsent: true })) === null)
      return false;
    if ((await this.store.putJsonIf(runRecordKey(valid.runId), valid, { ifAbsent: true })) === null)
      return false;
    await this.notify(valid);
    return true;
  }

  /**
   * Re-reads, applies `change`, writes only if nobody wrote in between; otherwise starts over with
   * the newer record. `change` may throw to refuse the transition it sees (e.g. a resume of a run
   * that another request has just resumed); it may run several times. A change of null writes
   * nothing and returns the record as read.
   */
  async update(runId: string, change: (r: RunRecord) => Partial<RunRecord> | null): Promise<RunRecord> {
    const { value, written } = await updateVersioned({
      store: this.store,
      key: runRecordKey(runId),
      attempts: this.maxWriteAttempts,
      read: () => this.findVersioned(runId),
      missing: () => new RunNotFoundError(runId),
      conflict: () => new RunWriteConflictError(runId, this.maxWriteAttempts),
      change,
    });
    if (written) await this.notify(value);
    return value;
  }

  /** The immutable facts of a run, or null for runs created before specs were stored. */
  async spec(runId: string): Promise<RunSpec | null> {
    const raw = await this.store.getJsonVersioned<unknown>(runSpecKey(runId));
    if (raw === null) return null;
    const parsed = runSpecSchema.safeParse(raw.value);
    if (!parsed.success) throw new UnreadableObjectError(runSpecKey(runId), parsed.error.message);
    return parsed.data as RunSpec;
  }

  /**
   * Rewrites an unreadable run.json from spec.json and the committed checkpoints, as a stopped run
   * (`failed` or `cancelled`) that can be resumed. A readable record is returned untouched.
   * @throws UnreadableObjectError when there is no spec to rebuild from.
   */
  async repair(
    runId: string,
    status: 'failed' | 'cancelled',
    committedSteps: number[],
  ): Promise<{ record: RunRecord; repaired: boolean }> {
    const key = runRecordKey(runId);
    let etag: string | null;
    try {
      const raw = await this.store.getJsonVersioned<unknown>(key);
      if (raw === null) throw new RunNotFoundError(runId);
      const readable = runRecordSchema.safeParse(raw.value);
      if (readable.success) return { record: readable.data as RunRecord, repaired: false };
      etag = raw.etag;
    } catch (error) {
      if (!(error instanceof UnreadableObjectError)) throw error;
      etag = await this.store.etag(key);
      if (etag === null) throw new RunNotFoundError(runId);
    }
    const spec = await this.spec(runId);
    if (!spec) {
      throw new UnreadableObjectError(runRecordKey(runId), `unreadable and ${runSpecKey(runId)} is missing`);
    }
    const now = new Date();
    const record: RunRecord = {
      ...spec,
      slices: spec.rounds ? spec.config.parallel.slices : 1,
      round: null,
      status,
      // Jobs of earlier attempts may still exist under any smaller generation: use one they cannot have.
      generation: Math.floor(now.getTime() / 1000),
      lastCommittedStep: committedSteps.length > 0 ? committedSteps[committedSteps.length - 1] : null,
      committedSteps,
      backend: null,
      workerId: null,
      latestMetrics: null,
      cancelRequested: false,
      error:
        status === 'failed'
          ? `${runRecordKey(runId)} was unreadable and was rebuilt from ${runSpecKey(runId)}`
          : null,
      retries: 0,
      lastRetryReason: null,
      updatedAt: now.toISOString(),
    };
    if ((await this.store.putJsonIf(key, record, { ifEtag: etag })) === null) {
      return this.repair(runId, status, committedSteps);
    }
    await this.notify(record);
    return { record, repaired: true };
  }

  /** Ids of every run with a run.json, in key order. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    const listing = this.store.list(runsPrefix());
    const keys = Symbol.asyncIterator in listing ? (listing as AsyncIterable<string>) : await listing;
    for await (const key of keys) {
      const match = RUN_RECORD_KEY.exec(key);
      if (match) ids.push(match[1]);
    }
    return ids;
  }

  /**
   * Every readable record, oldest first. An unreadable one is handed to `onUnreadable` and skipped,
   * so one bad object cannot hide the other runs.
   */
  list(onUnreadable: (error: UnreadableObjectError) => void = () => undefined): Promise<RunRecord[]> {
    return this.ids().then((ids) => this.findMany(ids, onUnreadable));
  }

  /** The readable records of `runIds` (missing ones left out), oldest first; see `list`. */
  async findMany(
    runIds: readonly string[],
    onUnreadable: (error: UnreadableObjectError) => void = () => undefined,
  ): Promise<RunRecord[]> {
    // Bounded: thousands of reads at once would time out on the S3 client's connection pool.
    const limit = pLimit(LIST_READS_IN_FLIGHT);
    const records = await Promise.all(
      runIds.map((runId) =>
        limit(async () => {
          try {
            return await this.find(runId);
          } catch (error) {
            if (!(error instanceof UnreadableObjectError)) throw error;
            onUnreadable(error);
            return null;
          }
        }),
      ),
    );
    return records
      .filter((r): r is RunRecord => r !== null)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.runId.localeCompare(b.runId));
  }

  private async findVersioned(runId: string): Promise<Versioned<RunRecord> | null> {
    const raw = await this.store.getJsonVersioned<unknown>(runRecordKey(runId));
    if (raw === null) return null;
    return { value: parseRecord(runId, raw.value), etag: raw.etag };
  }

  private async notify(record: RunRecord): Promise<void> {
    if (!this.options.observer) return;
    try {
      await this.options.observer.recordWritten(record);
    } catch (error) {
      this.options.onObserverError?.(error as Error, record);
    }
  }
}
