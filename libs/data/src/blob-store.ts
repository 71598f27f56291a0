/**
 * The byte-level storage the dataset code reads and writes through, so the same shard and
 * manifest code serves a local folder and an S3 bucket. Keys are '/'-separated relative paths
 * (`datasets/<name>/manifest.json`).
 */
export interface BlobStore {
  /** The whole object; rejects with a BlobNotFoundError (code 'BLOB_NOT_FOUND') when absent. */
  get(key: string): Promise<Uint8Array>;
  /** Replaces the object atomically: readers see the old bytes or the new ones, never a mix. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** Every key that starts with `prefix`, sorted. */
  list?(prefix: string): Promise<string[]>;
  /**
   * The object's bytes as a stream, for objects too large to hold (shards); rejects like `get` when
   * the object is absent. Readers fall back to `get` for stores without it.
   */
  getStream?(key: string): Promise<AsyncIterable<Uint8Array>>;
}

export class BlobNotFoundError extends Error {
  readonly code = 'BLOB_NOT_FOUND';
  constructor(readonly key: string) {
    super(`blob not found: ${key}`);
    this.name = 'BlobNotFoundError';
  }
}

/** Checks the code rather than the class so stores from other packages can throw their own error. */
export function isBlobNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'BLOB_NOT_FOUND';
}
