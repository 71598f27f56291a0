import { Inject, Injectable } from '@nestjs/common';
import {
  ObjectStore,
  attentionFileKey,
  attentionPrefix,
  evalKey,
  evalsPrefix,
  runPrefix,
  type ObjectSummary,
} from '@dinoq/storage';
import { API_OPTIONS, type ApiOptions } from '../api-options';

export const PRESIGN_SECONDS = 900;

/** Evaluation reports, attention exports and other run outputs, plus presigned links to them. */
@Injectable()
export class RunFiles {
  private readonly store: ObjectStore;

  constructor(@Inject(API_OPTIONS) options: ApiOptions) {
    this.store = options.store;
  }

  evalReport(runId: string, evalId: string): Promise<unknown> {
    return this.store.getJson<unknown>(evalKey(runId, evalId));
  }

  /** Stored reports keyed by evalId (the file name of runs/<id>/evals/<evalId>.json). */
  async evalReports(runId: string): Promise<{ evalId: string; report: unknown }[]> {
    const prefix = evalsPrefix(runId);
    const keys = (await this.store.list(prefix)).filter((key) =>
      /^[^/]+\.json$/.test(key.slice(prefix.length)),
    );
    return Promise.all(
      keys.map(async (key) => ({
        evalId: key.slice(prefix.length, -'.json'.length),
        report: await this.store.getJson<unknown>(key),
      })),
    );
  }

  attentionIndex(runId: string, exportId: string): Promise<unknown> {
    return this.store.getJson<unknown>(attentionFileKey(runId, exportId, 'index.json'));
  }

  async hasAttentionExport(runId: string, exportId: string): Promise<boolean> {
    return (await this.store.list(attentionPrefix(runId, exportId))).length > 0;
  }

  /** Stores one uploaded image; returns its key. */
  async putAttentionInput(
    runId: string,
    exportId: string,
    file: string,
    bytes: Uint8Array,
    contentType: string,
  ): Promise<string> {
    const key = attentionFileKey(runId, exportId, file);
    await this.store.putBytes(key, bytes, contentType);
    return key;
  }

  /** Objects under runs/<id>/<sub>, with keys relative to the run. */
  async objects(runId: string, sub = ''): Promise<ObjectSummary[]> {
    const base = runPrefix(runId);
    const out: ObjectSummary[] = [];
    for await (const object of this.store.listObjects(base + sub))
      out.push({ ...object, key: object.key.slice(base.length) });
    return out;
  }

  exists(runId: string, relativeKey: string): Promise<boolean> {
    return this.store.exists(runPrefix(runId) + relativeKey);
  }

  presign(runId: string, relativeKey: string, expiresSeconds = PRESIGN_SECONDS): Promise<string> {
    return this.store.presignGet(runPrefix(runId) + relativeKey, expiresSeconds);
  }
}
