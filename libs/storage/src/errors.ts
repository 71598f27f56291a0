/** An object that was expected in the bucket is not there. */
export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
  /** The code the dataset pipeline's blob stores use for a missing object, so it recognises ours too. */
  readonly code = 'BLOB_NOT_FOUND';
  constructor(
    readonly key: string,
    readonly bucket?: string,
  ) {
    super(`object not found: ${bucket ? `s3://${bucket}/${key}` : key}`);
  }
}

/**
 * A run id, dataset name or file name that cannot be used in an object key. Keys are only ever
 * built from validated parts, so a value like `../x` never reaches the bucket.
 */
export class InvalidIdError extends Error {
  override readonly name = 'InvalidIdError';
  constructor(
    readonly field: string,
    readonly value: unknown,
    reason: string,
  ) {
    super(`invalid ${field} ${JSON.stringify(value)}: ${reason}`);
  }
}

/** Stored bytes do not match what the commit record says they should be. */
export class ChecksumMismatchError extends Error {
  override readonly name = 'ChecksumMismatchError';
  constructor(
    readonly key: string,
    readonly file: string,
    detail: string,
  ) {
    super(`checkpoint file ${file} (${key}) is corrupt: ${detail}`);
  }
}

/** A storage request failed for a reason other than a missing object; names the operation and key. */
export class StorageError extends Error {
  override readonly name = 'StorageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An object exists but its bytes are not the record they should be (not JSON, or not the schema). */
export class UnreadableObjectError extends Error {
  override readonly name = 'UnreadableObjectError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`${key} cannot be read: ${reason}`);
  }
}
