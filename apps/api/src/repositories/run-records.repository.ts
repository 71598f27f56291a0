import { Inject, Injectable, Logger } from '@nestjs/common';
import { RunRepository, runRecordSchema, type RunRecord } from '@dinoq/jobs';
import {
  ObjectStore,
  listCommitted,
  metricsPrefix,
  readCheckpointCommit,
  runRecordKey,
  runsPrefix,
  type CheckpointCommit,
} from '@dinoq/storage';
import { API_OPTIONS, type ApiOptions } from '../api-options';

const RUN_RECORD_KEY = /^runs\/([^/]+)\/run\.json$/;

/** Run records, their committed checkpoints and metrics: everything under runs/<id>/ that describes training. */
@Injectable()
export class RunRecords {
  private readonly logger = new Logger('RunRecords');
  private readonly store: ObjectStore;
  private readonly records: RunRepository;

  constructor(@Inject(API_OPTIONS) options: ApiOptions) {
    this.store = options.store;
    this.records = new RunRepository(options.store);
  }

  find(runId: string): Promise<RunRecord | null> {
    return this.records.find(runId);
  }

  /** @throws RunNotFoundError */
  get(runId: string): Promise<RunRecord> {
    return this.records.get(runId);
  }

  /**
   * Writes a new record unless one exists. The existence check serves servers without conditional
   * writes (s3rver); If-None-Match closes the race on S3 and MinIO.
   */
  async create(record: RunRecord): Promise<boolean> {
    const key = runRecordKey(record.runId);
    if (await this.store.exists(key)) return false;
    const body = new TextEncoder().encode(`${JSON.stringify(runRecordSchema.parse(record), null, 2)}\n`);
    return this.store.putBytesIfAbsent(key, body, 'application/json');
  }

  /** Re-reads, applies `change`, writes back. */
  update(runId: string, change: (run: RunRecord) => Partial<RunRecord>): Promise<RunRecord> {
    return this.records.update(runId, change);
  }

  /**
   * Every readable run record, oldest first. A malformed record is logged and skipped, so one bad
   * object cannot hide the other runs from listings and reconciliation.
   */
  async list(): Promise<RunRecord[]> {
    const ids: string[] = [];
    for await (const key of this.store.list(runsPrefix())) {
      const match = RUN_RECORD_KEY.exec(key);
      if (match) ids.push(match[1]);
    }
    const records = await Promise.all(
      ids.map(async (runId) => {
        try {
          return await this.records.find(runId);
        } catch (error) {
          this.logger.warn(`skipping run ${runId}: ${(error as Error).message}`);
          return null;
        }
      }),
    );
    return records
      .filter((record): record is RunRecord => record !== null)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Steps with a COMMITTED record, ascending: the storage truth, newer than run.json may be. */
  committedSteps(runId: string): Promise<number[]> {
    return listCommitted(this.store, runId);
  }

  checkpointCommit(runId: string, step: number): Promise<CheckpointCommit | null> {
    return readCheckpointCommit(this.store, runId, step);
  }

  /** Every line of runs/<id>/metrics/*.jsonl, in shard order, parsed. */
  async metricLines(runId: string): Promise<Record<string, unknown>[]> {
    const keys = (await this.store.list(metricsPrefix(runId))).filter((key) => key.endsWith('.jsonl')).sort();
    const lines: Record<string, unknown>[] = [];
    for (const key of keys) {
      const text = new TextDecoder().decode(await this.store.getBytes(key));
      text.split('\n').forEach((line, index) => {
        if (line.trim() === '') return;
        try {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          throw new Error(`${key} line ${index + 1} is not valid JSON`);
        }
      });
    }
    return lines;
  }
}
