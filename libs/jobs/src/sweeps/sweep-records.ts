import {
  UnreadableObjectError,
  sweepRecordKey,
  sweepReportKey,
  sweepsPrefix,
  type Versioned,
} from '@dinoq/storage';
import type { z } from 'zod';
import { updateVersioned, type RunRecordStore } from '../run-record';
import { sweepRecordSchema, type SweepRecord } from './sweep-spec';
import { sweepReportSchema, type SweepReport } from './sweep-report';

const SWEEP_RECORD_KEY = /^sweeps\/([^/]+)\/sweep\.json$/;
const WRITE_ATTEMPTS = 25;

export class SweepNotFoundError extends Error {
  constructor(readonly sweepId: string) {
    super(`sweep "${sweepId}" does not exist`);
    this.name = 'SweepNotFoundError';
  }
}

function parsed<S extends z.ZodType>(schema: S, key: string, raw: unknown): z.infer<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const reason = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
  throw new UnreadableObjectError(key, reason);
}

/**
 * Sweep records (sweeps/<id>/sweep.json) and reports (report.json). Every write is a
 * compare-and-swap on the object's ETag, as run records are written: of two API replicas that
 * change one sweep at once, the loser re-reads and applies its change again.
 */
export class SweepRepository {
  constructor(private readonly store: RunRecordStore) {}

  /** Writes a new sweep unless one exists under its id: of concurrent creates exactly one wins. */
  async create(record: SweepRecord): Promise<boolean> {
    const valid = sweepRecordSchema.parse(record);
    return (await this.store.putJsonIf(sweepRecordKey(valid.sweepId), valid, { ifAbsent: true })) !== null;
  }

  /** @throws UnreadableObjectError when sweep.json is not a sweep record. */
  async find(sweepId: string): Promise<SweepRecord | null> {
    return (await this.findVersioned(sweepId))?.value ?? null;
  }

  /** @throws SweepNotFoundError */
  async get(sweepId: string): Promise<SweepRecord> {
    const record = await this.find(sweepId);
    if (!record) throw new SweepNotFoundError(sweepId);
    return record;
  }

  /** Re-reads, applies `change` (null: write nothing), writes only if nobody wrote in between. */
  async update(
    sweepId: string,
    change: (record: SweepRecord) => Partial<SweepRecord> | null,
  ): Promise<SweepRecord> {
    const { value } = await updateVersioned({
      store: this.store,
      key: sweepRecordKey(sweepId),
      attempts: WRITE_ATTEMPTS,
      read: () => this.findVersioned(sweepId),
      missing: () => new SweepNotFoundError(sweepId),
      conflict: () =>
        new Error(
          `sweep "${sweepId}": sweep.json kept changing under ${WRITE_ATTEMPTS} attempts to update it`,
        ),
      change,
    });
    return value;
  }

  /** Ids of every sweep with a sweep.json, in key order. */
  async ids(): Promise<string[]> {
    const listing = this.store.list(sweepsPrefix());
    const keys = Symbol.asyncIterator in listing ? (listing as AsyncIterable<string>) : await listing;
    const ids: string[] = [];
    for await (const key of keys) {
      const match = SWEEP_RECORD_KEY.exec(key);
      if (match) ids.push(match[1]);
    }
    return ids;
  }

  async report(sweepId: string): Promise<SweepReport | null> {
    const raw = await this.store.getJsonVersioned<unknown>(sweepReportKey(sweepId));
    return raw === null ? null : parsed(sweepReportSchema, sweepReportKey(sweepId), raw.value);
  }

  /**
   * Writes the report if it changed, compare-and-swap against the version read: a controller that
   * derived its report from older results never overwrites one written after it read.
   */
  async writeReport(report: SweepReport): Promise<boolean> {
    const key = sweepReportKey(report.sweepId);
    const current = await this.store.getJsonVersioned<SweepReport>(key);
    if (current !== null && sameReport(current.value, report)) return false;
    const condition = current === null ? ({ ifAbsent: true } as const) : { ifEtag: current.etag };
    return (await this.store.putJsonIf(key, report, condition)) !== null;
  }

  private async findVersioned(sweepId: string): Promise<Versioned<SweepRecord> | null> {
    const raw = await this.store.getJsonVersioned<unknown>(sweepRecordKey(sweepId));
    if (raw === null) return null;
    return { value: parsed(sweepRecordSchema, sweepRecordKey(sweepId), raw.value), etag: raw.etag };
  }
}

/** Equal but for when it was derived. */
function sameReport(a: SweepReport, b: SweepReport): boolean {
  return JSON.stringify({ ...a, derivedAt: null }) === JSON.stringify({ ...b, derivedAt: null });
}
