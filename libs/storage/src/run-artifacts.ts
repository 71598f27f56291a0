import { encodeJson, JSON_CONTENT_TYPE, type ArtifactStore } from './artifact-store';
import {
  commitAt,
  commitCheckpoint,
  latestCommitted,
  listCommitted,
  loadAt,
  loadCheckpoint,
  readCheckpointCommit,
  readCommitAt,
  type CheckpointCommit,
  type CheckpointLocation,
  type CommitResult,
  type LoadedCheckpoint,
} from './checkpoint-store';
import {
  backboneExportKey,
  evalKey,
  metricsKey,
  metricsPrefix,
  roundPrefix,
  sliceResultPrefix,
  stepsMetricsKey,
  validateId,
} from './keys';

/** One slice of one round: the round's first step, its end, how many slices it has, which one. */
export interface SliceOfRound {
  fromStep: number;
  toStep: number;
  slices: number;
  slice: number;
}

const NDJSON_CONTENT_TYPE = 'application/x-ndjson';

/** One metrics file as stored: its key and its text, one JSON value per line. */
export interface MetricsFile {
  key: string;
  text: string;
}

/**
 * What one run wrote to storage: its checkpoints, metrics, exported backbone and evaluation
 * reports, under runs/<runId>/. The same class serves workers over a bucket and the CLI over a
 * local folder, so both keep one layout and commit checkpoints the same way.
 */
export class RunArtifacts {
  constructor(
    private readonly store: ArtifactStore,
    readonly runId: string,
  ) {
    validateId('runId', runId);
  }

  /** Committed steps, ascending; a checkpoint without its COMMITTED record does not count. */
  committedSteps(): Promise<number[]> {
    return listCommitted(this.store, this.runId);
  }

  /** The newest committed step, or null when nothing is committed yet. */
  newestCommit(): Promise<number | null> {
    return latestCommitted(this.store, this.runId);
  }

  /** The COMMITTED record of a step (which files it holds), or null when the step is not committed. */
  checkpointCommit(step: number): Promise<CheckpointCommit | null> {
    return readCheckpointCommit(this.store, this.runId, step);
  }

  /** Every file of a committed step, or only those in `only`, each checked against the record. */
  loadCheckpoint(step: number, only?: readonly string[]): Promise<LoadedCheckpoint> {
    return loadCheckpoint(this.store, this.runId, step, only);
  }

  /** Files first, COMMITTED last; a step that is already committed is left as it is. */
  commitCheckpoint(step: number, files: Record<string, Uint8Array>): Promise<CommitResult> {
    return commitCheckpoint(this.store, this.runId, step, files);
  }

  /** A slice's result, committed like a checkpoint (files first, COMMITTED last) under the round's folder. */
  commitSliceResult(of: SliceOfRound, files: Record<string, Uint8Array>): Promise<CommitResult> {
    return commitAt(this.store, this.sliceAt(of), files);
  }

  /** The commit record of a slice's result, or null while the slice has not finished. */
  sliceResultCommit(of: SliceOfRound): Promise<CheckpointCommit | null> {
    return readCommitAt(this.store, this.sliceAt(of));
  }

  loadSliceResult(of: SliceOfRound): Promise<LoadedCheckpoint> {
    return loadAt(this.store, this.sliceAt(of));
  }

  /** Drops every slice result of the round starting at `fromStep` (once its merge is committed). */
  async dropRound(fromStep: number): Promise<void> {
    await this.store.deletePrefix?.(roundPrefix(this.runId, fromStep));
  }

  /** The lines of one training shard (runs/<id>/metrics/<shard>.jsonl), replacing earlier ones. */
  writeShardMetrics(shard: number | string, lines: readonly object[]): Promise<void> {
    return this.writeLines(metricsKey(this.runId, shard), lines);
  }

  /** The lines a local run trained from `fromStep` up to its next commit. */
  writeStepsMetrics(fromStep: number, lines: readonly object[]): Promise<void> {
    return this.writeLines(stepsMetricsKey(this.runId, fromStep), lines);
  }

  /** Every metrics file of the run, in key order (shard order). */
  async metricsFiles(): Promise<MetricsFile[]> {
    const keys = (await this.store.list(metricsPrefix(this.runId)))
      .filter((key) => key.endsWith('.jsonl'))
      .sort();
    return Promise.all(
      keys.map(async (key) => ({ key, text: new TextDecoder().decode(await this.store.get(key)) })),
    );
  }

  /** The finished run's teacher backbone under the reference names. */
  writeBackbone(safetensors: Uint8Array): Promise<void> {
    return this.store.putBytes(backboneExportKey(this.runId), safetensors, 'application/octet-stream');
  }

  writeEvaluation(evalId: string, report: object): Promise<void> {
    const key = evalKey(this.runId, evalId);
    return this.store.putBytes(key, encodeJson(key, report), JSON_CONTENT_TYPE);
  }

  private sliceAt(of: SliceOfRound): CheckpointLocation {
    return {
      runId: this.runId,
      step: of.toStep,
      prefix: sliceResultPrefix(this.runId, of.fromStep, of.slices, of.slice),
      label: `${this.runId} round ${of.fromStep}..${of.toStep} slice ${of.slice} of ${of.slices}`,
    };
  }

  private writeLines(key: string, lines: readonly object[]): Promise<void> {
    const body = lines.map((line) => JSON.stringify(line)).join('\n') + '\n';
    return this.store.putBytes(key, new TextEncoder().encode(body), NDJSON_CONTENT_TYPE);
  }
}
