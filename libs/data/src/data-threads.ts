/** Threads for the data pipeline: a number (0 = on the training thread), or `auto`. */
export type DataThreadSetting = number | 'auto';

/**
 * `auto`: one augmentation thread when the step runs on the main thread (a single replica, or a
 * GPU backend driven from it), none when replicas compute in their own threads and leave the main
 * thread idle during the step — there augmentation overlaps the step without a core of its own.
 */
export function resolveDataThreads(setting: DataThreadSetting, replicas: number): number {
  if (setting === 'auto') return replicas > 1 ? 0 : 1;
  if (!Number.isInteger(setting) || setting < 0)
    throw new Error(`data threads must be a non-negative integer or "auto", got ${String(setting)}`);
  return setting;
}

/** Parses `auto` or a non-negative integer, naming `field` when it is neither. */
export function parseDataThreads(raw: string | undefined, field: string): DataThreadSetting {
  if (raw === undefined || raw.trim() === '' || raw.trim() === 'auto') return 'auto';
  const n = Number(raw);
  if (Number.isInteger(n) && n >= 0 && n <= 64) return n;
  throw new Error(`${field} must be "auto" or an integer in [0, 64], got "${raw}"`);
}
