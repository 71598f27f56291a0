import { ConfigError, parseRunConfig, type RunConfig } from '@dinoq/config';
import { networkFileName } from '@dinoq/dino';
import { RunNotFoundError, type RunRecord } from '@dinoq/jobs';
import { NotFoundError, RunArtifacts, type LoadedCheckpoint } from '@dinoq/storage';
import type { ComputeContext } from '../job-scope';
import { UnrecoverableJobError } from '../protocol';

export interface ResolvedCheckpoint {
  run: RunRecord;
  config: RunConfig;
  checkpoint: LoadedCheckpoint;
}

/**
 * The run and the checkpoint a read-only job (evaluation, attention export) works on: the given
 * committed step, or the newest one when the job asks for null. Only the teacher's weights are
 * read (and checked), so damaged optimizer or student files do not stop an evaluation. Problems
 * retrying cannot fix (no run, no such commit) fail the job for good.
 */
export async function resolveCheckpoint(
  ctx: ComputeContext,
  runId: string,
  step: number | null,
): Promise<ResolvedCheckpoint> {
  let run: RunRecord;
  try {
    run = await ctx.runs.get(runId);
  } catch (error) {
    if (error instanceof RunNotFoundError) throw new UnrecoverableJobError(error.message);
    throw error;
  }
  let config: RunConfig;
  try {
    config = parseRunConfig(run.config);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new UnrecoverableJobError(`run ${runId}: stored config is invalid: ${error.message}`);
    }
    throw error;
  }
  const artifacts = new RunArtifacts(ctx.store, runId);
  const resolved = step ?? (await artifacts.newestCommit());
  if (resolved === null) throw new UnrecoverableJobError(`run ${runId} has no committed checkpoint yet`);
  try {
    const checkpoint = await artifacts.loadCheckpoint(resolved, [networkFileName('teacher')]);
    return { run, config, checkpoint };
  } catch (error) {
    if (error instanceof NotFoundError) {
      throw new UnrecoverableJobError(
        `run ${runId}: step ${resolved} is not a committed checkpoint (${error.message})`,
      );
    }
    throw error;
  }
}
