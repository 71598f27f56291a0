import { z } from 'zod';
import { badRequest, conflict } from './http/api-errors';

/** A committed step, or "latest" (the newest commit when the job runs). */
export const checkpointStepSchema = z.union([z.number().int().min(0), z.literal('latest')]).default('latest');

/**
 * The step a job should read: a requested step must be committed already; "latest" needs at least
 * one commit, and stays null so the job picks the newest one when it runs.
 */
export function resolveCheckpointStep(
  runId: string,
  requested: number | 'latest',
  committed: number[],
): number | null {
  if (requested === 'latest') {
    if (committed.length === 0) throw conflict(`run "${runId}" has no committed checkpoint yet`);
    return null;
  }
  if (!committed.includes(requested)) {
    const known = committed.length > 0 ? committed.join(', ') : 'none';
    throw badRequest(
      `step ${requested} is not a committed checkpoint of run "${runId}" (committed: ${known})`,
      'step',
    );
  }
  return requested;
}
