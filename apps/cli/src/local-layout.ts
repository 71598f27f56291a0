import * as path from 'node:path';
import type { RunConfig } from '@dinoq/config';
import { FsBlobStore } from '@dinoq/data';
import { networkFileName, networkParams, type NetworkRole } from '@dinoq/dino';
import {
  checkpointPrefix,
  encodeJson,
  readJson,
  runPrefix,
  runRecordKey,
  RunArtifacts,
} from '@dinoq/storage';

export function dataDir(opt?: string): string {
  return path.resolve(opt ?? process.env.DINOQ_DATA_DIR ?? '.data');
}

/** What `dinoq train` records about a local run in its run.json. */
export interface LocalRunRecord {
  runId: string;
  dataset: string;
  datasetSize: number;
  backend: unknown;
  config: RunConfig;
}

/**
 * A run trained by the CLI: the same keys as in a bucket (runs/<id>/checkpoints/<step>/...,
 * COMMITTED last; runs/<id>/metrics/...) under the local data folder, written by the same code.
 */
export class LocalRun {
  readonly artifacts: RunArtifacts;
  private readonly store: FsBlobStore;

  constructor(
    readonly root: string,
    readonly runId: string,
  ) {
    this.store = new FsBlobStore(root);
    this.artifacts = new RunArtifacts(this.store, runId);
  }

  /** The run whose folder is `dir` (<data dir>/runs/<id>). */
  static at(dir: string): LocalRun {
    const resolved = path.resolve(dir);
    return new LocalRun(path.dirname(path.dirname(resolved)), path.basename(resolved));
  }

  get dir(): string {
    return path.join(this.root, runPrefix(this.runId));
  }

  checkpointDir(step: number): string {
    return path.join(this.root, checkpointPrefix(this.runId, step));
  }

  /** run.json, or null for a run that was never started. */
  async record(): Promise<LocalRunRecord | null> {
    return (await readJson(this.store, runRecordKey(this.runId))) as LocalRunRecord | null;
  }

  async requireRecord(): Promise<LocalRunRecord> {
    const record = await this.record();
    if (!record) throw new Error(`run "${this.runId}" has no run.json in ${this.dir}`);
    return record;
  }

  async writeRecord(record: LocalRunRecord): Promise<void> {
    const key = runRecordKey(this.runId);
    await this.store.putBytes(key, encodeJson(key, record));
  }

  /** One network of a committed checkpoint; only its file is read (and checked against COMMITTED). */
  async network(
    step: number,
    network: NetworkRole,
    config: RunConfig,
  ): Promise<ReturnType<typeof networkParams>> {
    const checkpoint = await this.artifacts.loadCheckpoint(step, [networkFileName(network)]);
    return networkParams(config, checkpoint.files, network);
  }
}
