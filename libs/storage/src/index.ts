export { createS3Client, S3_CLIENT_DEFAULTS, type S3ClientOptions } from './s3-client';
export {
  ObjectStore,
  type ObjectStoreOptions,
  type PutStreamOptions,
  type ByteRange,
  type Versioned,
  type WriteCondition,
} from './object-store';
export type { ListingMode, ObjectSummary } from './bucket-listing';
export { KeyListing } from './key-listing';
export {
  NotFoundError,
  InvalidIdError,
  ChecksumMismatchError,
  StorageError,
  UnreadableObjectError,
} from './errors';
export * from './keys';
export {
  commitCheckpoint,
  readCheckpointCommit,
  listCommitted,
  latestCommitted,
  loadCheckpoint,
  sha256Hex,
  CHECKPOINT_COMMIT_FORMAT,
  type CheckpointCommit,
  type CommittedFile,
  type CommitResult,
  type LoadedCheckpoint,
} from './checkpoint-store';
export { encodeJson, readJson, type ArtifactStore } from './artifact-store';
export { RunArtifacts, type MetricsFile, type SliceOfRound } from './run-artifacts';
export {
  startEmbeddedS3,
  continuationTokensSupported,
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  type EmbeddedS3,
  type EmbeddedS3Options,
} from './embedded-s3';
export { storageFromEnv, STORAGE_ENV_DEFAULTS, type Storage, type StorageEnv } from './storage-from-env';
