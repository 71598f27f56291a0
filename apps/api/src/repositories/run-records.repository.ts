import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  RunRepository,
  parseMetricsFiles,
  type RunRecord,
  type RunSpec,
  type SkippedMetricsLine,
  type StoredMetricsLine,
} from '@dinoq/jobs';
import {
  ObjectStore,
  RunArtifacts,
  listCommitted,
  readCheckpointCommit,
  type CheckpointCommit,
} from '@dinoq/storage';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { RunIndexRepository } from './run-index.repository';

/** Run records, their committed checkpoints and metrics: everything under runs/<id>/ that describes training. */
@Injectable()
export class RunRecords {
  private readonly logger = new Logger('RunRecords');
  private readonly store: ObjectStore;
  private readonly records: RunRepository;

  constructor(@Inject(API_OPTIONS) options: ApiOptions, index: RunIndexRepository) {
    this.store = options.store;
    this.records = new RunRepository(options.store, {
      observer: index,
      onObserverError: (error, record) =>
        this.logger.warn(
          `run ${record.runId}: index not updated (${error.message}); reconciliation repairs it`,
        ),
    });
  }

  find(runId: string): Promise<RunRecord | null> {
    return this.records.find(runId);
  }

  /** @throws RunNotFoundError */
  get(runId: string): Promise<RunRecord> {
    return this.records.get(runId);
  }

  /** Writes a new run unless one exists under its id: of concurrent creates exactly one wins. */
  create(record: RunRecord): Promise<boolean> {
    return this.records.create(record);
  }

  /** Compare-and-swap: re-reads, applies `change` (null: write nothing), retries if another writer won. */
  update(runId: string, change: (run: RunRecord) => Partial<RunRecord> | null): Promise<RunRecord> {
    return this.records.update(runId, change);
  }

  /** Rebuilds an unreadable run.json from spec.json as a stopped run; a readable one is left alone. */
  repair(runId: string, status: 'failed' | 'cancelled', committedSteps: number[]) {
    return this.records.repair(runId, status, committedSteps);
  }

  spec(runId: string): Promise<RunSpec | null> {
    return this.records.spec(runId);
  }

  /**
   * Every readable run record, oldest first. A malformed record is logged and skipped, so one bad
   * object cannot hide the other runs from listings and reconciliation.
   */
  list(): Promise<RunRecord[]> {
    return this.records.list((error) => this.logger.warn(`skipping a run: ${error.message}`));
  }

  /** The readable records among `runIds`, oldest first; unreadable ones are logged and skipped. */
  findMany(runIds: readonly string[]): Promise<RunRecord[]> {
    return this.records.findMany(runIds, (error) => this.logger.warn(`skipping a run: ${error.message}`));
  }

  /** Steps with a COMMITTED record, ascending: the storage truth, newer than run.json may be. */
  committedSteps(runId: string): Promise<number[]> {
    return listCommitted(this.store, runId);
  }

  checkpointCommit(runId: string, step: number): Promise<CheckpointCommit | null> {
    return readCheckpointCommit(this.store, runId, step);
  }

  /**
   * Every line of runs/<id>/metrics/*.jsonl, in shard order. A line that is not a metrics line is
   * left out, logged with its key and line number, and counted in `skipped`.
   */
  async metricLines(runId: string): Promise<{ lines: StoredMetricsLine[]; skipped: SkippedMetricsLine[] }> {
    const parsed = parseMetricsFiles(await new RunArtifacts(this.store, runId).metricsFiles());
    for (const { key, line, reason } of parsed.skipped) {
      this.logger.warn(`run ${runId}: skipping ${key} line ${line}: ${reason}`);
    }
    return parsed;
  }
}
