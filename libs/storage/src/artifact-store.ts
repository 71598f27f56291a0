import { StorageError, UnreadableObjectError } from './errors';

/**
 * The few operations a run's artifacts need from storage. An `ObjectStore` has them, and so has the
 * data pipeline's `FsBlobStore` over a local folder, so a local run keeps the bucket's key layout.
 */
export interface ArtifactStore {
  /** Rejects with an error whose `code` is 'BLOB_NOT_FOUND' when the object does not exist. */
  get(key: string): Promise<Uint8Array>;
  putBytes(key: string, bytes: Uint8Array, contentType?: string): Promise<void>;
  /** Writes only if nothing exists under the key; false when something does. */
  putBytesIfAbsent(key: string, bytes: Uint8Array, contentType?: string): Promise<boolean>;
  /** Every key under the prefix. */
  list(prefix: string): PromiseLike<string[]>;
  /** Removes every key under the prefix; stores without it keep what they hold. */
  deletePrefix?(prefix: string): Promise<number>;
}

export const JSON_CONTENT_TYPE = 'application/json';

/** Checks the code rather than the class, so a missing object reads the same from every store. */
export function isNotFound(error: unknown): boolean {
  return (
    typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'BLOB_NOT_FOUND'
  );
}

/** Indented JSON with a final newline, as every JSON object in the bucket is written. */
export function encodeJson(key: string, value: unknown): Uint8Array {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new StorageError(`cannot store ${key}: value is not JSON`);
  return new TextEncoder().encode(`${text}\n`);
}

/**
 * Parsed JSON, or null when the object does not exist.
 * @throws UnreadableObjectError naming the key when the bytes are not JSON.
 */
export async function readJson(store: Pick<ArtifactStore, 'get'>, key: string): Promise<unknown> {
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch (error) {
    throw new UnreadableObjectError(key, `not valid JSON (${(error as Error).message})`);
  }
}
