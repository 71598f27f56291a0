import { z } from 'zod';
import type { RunConfig } from '@dinoq/config';
import { runRecordKey, runsPrefix, validateId } from '@dinoq/storage';

export const runStatuses = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof runStatuses)[number];

/**
 * The durable state of a run, stored as runs/<runId>/run.json. S3 is the source of truth:
 * Redis can be wiped and the queue rebuilt from these records (see reconcile).
 */
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
  createdAt: z.string(),
  updatedAt: z.string(),
});

export type RunRecord = Omit<z.infer<typeof runRecordSchema>, 'config'> & { config: RunConfig };

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

export interface JsonStore {
  getJson<T>(key: string): Promise<T | null>;
  putJson(key: string, value: unknown): Promise<void>;
  list(prefix: string): PromiseLike<string[]> | AsyncIterable<string>;
}

export class RunNotFoundError extends Error {
  constructor(readonly runId: string) {
    super(`run "${runId}" does not exist`);
    this.name = 'RunNotFoundError';
  }
}

/** Reads and writes run records; the only code that knows where they live. */
export class RunRepository {
  constructor(private readonly store: JsonStore) {}

  async get(runId: string): Promise<RunRecord> {
    const r = await this.find(runId);
    if (!r) throw new RunNotFoundError(runId);
    return r;
  }

  async find(runId: string): Promise<RunRecord | null> {
    const raw = await this.store.getJson<unknown>(runRecordKey(runId));
    if (raw === null) return null;
    const parsed = runRecordSchema.safeParse(raw);
    if (!parsed.success)
      throw new Error(`run record ${runRecordKey(runId)} is malformed: ${parsed.error.message}`);
    return parsed.data as RunRecord;
  }

  async put(record: RunRecord): Promise<RunRecord> {
    const next = { ...record, updatedAt: new Date().toISOString() };
    await this.store.putJson(runRecordKey(record.runId), next);
    return next;
  }

  /** Re-reads, applies `change`, writes: keeps flags set concurrently (e.g. cancelRequested). */
  async update(runId: string, change: (r: RunRecord) => Partial<RunRecord>): Promise<RunRecord> {
    const current = await this.get(runId);
    return this.put({ ...current, ...change(current) });
  }

  async list(): Promise<RunRecord[]> {
    const keys: string[] = [];
    const listing = this.store.list(runsPrefix());
    if (Symbol.asyncIterator in listing) for await (const k of listing as AsyncIterable<string>) keys.push(k);
    else keys.push(...(await listing));
    const ids = keys.filter((k) => /^runs\/[^/]+\/run\.json$/.test(k)).map((k) => k.split('/')[1]);
    const records = await Promise.all(ids.map((id) => this.find(id)));
    return records
      .filter((r): r is RunRecord => r !== null)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }
}
