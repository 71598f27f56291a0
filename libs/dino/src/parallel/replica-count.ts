import * as os from 'node:os';
import type { BackendInfo } from '../backend/select-backend';

/** How many data-parallel replicas to train with: a number, or `auto`. */
export type ReplicaSetting = number | 'auto';

/**
 * `auto`: one replica per core on the WASM and plain-CPU backends, which compute on one thread
 * each, and one on TensorFlow backends, which spread a step over all cores (or a GPU) by
 * themselves. Never more replicas than images in a batch.
 */
export function resolveReplicas(
  setting: ReplicaSetting,
  backend: Pick<BackendInfo, 'name' | 'kind'>,
  batchSize: number,
  cores: number = os.availableParallelism(),
): number {
  const singleThreaded = backend.kind === 'cpu' && (backend.name === 'wasm' || backend.name === 'cpu');
  const wanted = setting === 'auto' ? (singleThreaded ? cores : 1) : setting;
  if (!Number.isInteger(wanted) || wanted < 1)
    throw new Error(`replicas must be a positive integer or "auto", got ${String(setting)}`);
  return Math.max(1, Math.min(wanted, batchSize));
}

/** Parses `auto` or an integer in [1, 256], naming `field` when it is neither. */
export function parseReplicaSetting(raw: string | undefined, field: string): ReplicaSetting {
  if (raw === undefined || raw.trim() === '' || raw.trim() === 'auto') return 'auto';
  const n = Number(raw);
  if (Number.isInteger(n) && n >= 1 && n <= 256) return n;
  throw new Error(`${field} must be "auto" or an integer in [1, 256], got "${raw}"`);
}
