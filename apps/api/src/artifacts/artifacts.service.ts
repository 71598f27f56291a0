import { Injectable } from '@nestjs/common';
import { UnreadableObjectError, formatStep, type CheckpointCommit } from '@dinoq/storage';
import { badRequest, notFound } from '../http/api-errors';
import { PRESIGN_SECONDS, RunFiles } from '../repositories/run-files.repository';
import { RunRecords } from '../repositories/run-records.repository';

const MAX_RELATIVE_KEY = 512;

/** A path inside runs/<id>/: relative, no empty or dot segments, no backslashes. */
export function checkRelativeKey(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0)
    throw badRequest('key is required (a path inside the run)', 'key');
  if (value.length > MAX_RELATIVE_KEY)
    throw badRequest(`key must be at most ${MAX_RELATIVE_KEY} characters`, 'key');
  if (value.startsWith('/') || value.includes('\\'))
    throw badRequest('key must be a relative path inside the run', 'key');
  if (value.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    throw badRequest('key must not contain empty, "." or ".." segments', 'key');
  }
  if ([...value].some((char) => char.charCodeAt(0) < 0x20 || char.charCodeAt(0) === 0x7f)) {
    throw badRequest('key must not contain control characters', 'key');
  }
  return value;
}

type CommitRead =
  | { step: number; commit: CheckpointCommit | null }
  | { step: number; unreadable: { key: string; reason: string } };

@Injectable()
export class ArtifactsService {
  constructor(
    private readonly runs: RunRecords,
    private readonly files: RunFiles,
  ) {}

  /**
   * Committed checkpoints (files from their COMMITTED records), exported backbone, reports,
   * attention maps. A COMMITTED record that cannot be read is listed under `unreadableCheckpoints`
   * with its key and why, so one damaged object neither fails the listing nor goes unseen.
   */
  async list(runId: string) {
    await this.runs.get(runId);
    const link = async (key: string, size: number) => ({
      key,
      size,
      url: await this.files.presign(runId, key),
    });
    const steps = await this.runs.committedSteps(runId);
    const reads = await Promise.all(steps.map((step) => this.readCommit(runId, step)));
    const unreadableCheckpoints = reads.flatMap((read) =>
      'unreadable' in read ? [{ step: read.step, ...read.unreadable }] : [],
    );
    const checkpoints = await Promise.all(
      reads
        .flatMap((read) => ('commit' in read ? [read] : []))
        .map(async ({ step, commit }) => {
          const files = await Promise.all(
            Object.entries(commit?.files ?? {}).map(async ([name, file]) => ({
              name,
              sha256: file.sha256,
              ...(await link(`checkpoints/${formatStep(step)}/${name}`, file.size)),
            })),
          );
          return { step, committedAt: commit?.committedAt ?? null, files };
        }),
    );
    const [exported, evals, attention, metrics] = await Promise.all([
      this.files.objects(runId, 'export/'),
      this.files.objects(runId, 'evals/'),
      this.files.objects(runId, 'attention/'),
      this.files.objects(runId, 'metrics/'),
    ]);
    const backbone = exported.find((object) => object.key === 'export/backbone.safetensors');
    const exports = new Map<string, { name: string; key: string; size: number; url: string }[]>();
    for (const object of attention) {
      const [, exportId, ...rest] = object.key.split('/');
      const entry = { name: rest.join('/'), ...(await link(object.key, object.size)) };
      exports.set(exportId, [...(exports.get(exportId) ?? []), entry]);
    }
    return {
      runId,
      expiresInSeconds: PRESIGN_SECONDS,
      checkpoints,
      unreadableCheckpoints,
      backbone: backbone ? await link(backbone.key, backbone.size) : null,
      evaluations: await Promise.all(evals.map((object) => link(object.key, object.size))),
      attention: [...exports.entries()].map(([exportId, files]) => ({ exportId, files })),
      metrics: await Promise.all(metrics.map((object) => link(object.key, object.size))),
    };
  }

  private async readCommit(runId: string, step: number): Promise<CommitRead> {
    try {
      return { step, commit: await this.runs.checkpointCommit(runId, step) };
    } catch (error) {
      if (!(error instanceof UnreadableObjectError)) throw error;
      return {
        step,
        unreadable: { key: `checkpoints/${formatStep(step)}/COMMITTED`, reason: error.reason },
      };
    }
  }

  /** A presigned GET for one object of the run, after checking the path cannot leave runs/<id>/. */
  async url(runId: string, key: unknown) {
    const relative = checkRelativeKey(key);
    await this.runs.get(runId);
    if (!(await this.files.exists(runId, relative))) {
      throw notFound(`run "${runId}" has no object "${relative}"`, 'key');
    }
    return {
      runId,
      key: relative,
      url: await this.files.presign(runId, relative),
      expiresInSeconds: PRESIGN_SECONDS,
    };
  }
}
