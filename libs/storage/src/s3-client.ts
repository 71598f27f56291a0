import { S3Client } from '@aws-sdk/client-s3';

export interface S3ClientOptions {
  /** e.g. `http://127.0.0.1:9000` for MinIO or s3rver; omit for AWS S3 proper. */
  endpoint?: string;
  region: string;
  /** Both keys or neither: without them the SDK's default credential chain is used (IAM roles, profiles). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`) work on every S3-compatible server; virtual hosts need DNS. */
  forcePathStyle?: boolean;
  /** Total tries per request, first one included. Retries back off exponentially with jitter. */
  maxAttempts?: number;
  connectionTimeoutMs?: number;
  /** A request whose socket stays silent this long fails with a retryable TimeoutError. */
  socketIdleTimeoutMs?: number;
}

export const S3_CLIENT_DEFAULTS = {
  forcePathStyle: true,
  maxAttempts: 4,
  connectionTimeoutMs: 5_000,
  socketIdleTimeoutMs: 60_000,
} as const;

/**
 * Builds the one S3 client configuration this project uses against AWS, MinIO and s3rver alike.
 *
 * Checksums are only computed when an operation requires them: with the SDK's default
 * (`WHEN_SUPPORTED`) a streamed PutObject is sent as `aws-chunked` with a trailing checksum,
 * which S3-compatible servers such as s3rver store verbatim, framing bytes included.
 * The `standard` retry mode retries 5xx answers, throttling and timeouts with backoff.
 */
export function createS3Client(options: S3ClientOptions): S3Client {
  const { accessKeyId, secretAccessKey } = options;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new Error(
      `S3 credentials: accessKeyId and secretAccessKey must be given together (got only ${
        accessKeyId === undefined ? 'secretAccessKey' : 'accessKeyId'
      })`,
    );
  }
  const maxAttempts = options.maxAttempts ?? S3_CLIENT_DEFAULTS.maxAttempts;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new Error(`S3 client maxAttempts must be an integer >= 1, got ${maxAttempts}`);
  }
  return new S3Client({
    region: options.region,
    endpoint: options.endpoint,
    forcePathStyle: options.forcePathStyle ?? S3_CLIENT_DEFAULTS.forcePathStyle,
    credentials:
      accessKeyId !== undefined && secretAccessKey !== undefined
        ? { accessKeyId, secretAccessKey }
        : undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    retryMode: 'standard',
    maxAttempts,
    requestHandler: {
      connectionTimeout: options.connectionTimeoutMs ?? S3_CLIENT_DEFAULTS.connectionTimeoutMs,
      socketTimeout: options.socketIdleTimeoutMs ?? S3_CLIENT_DEFAULTS.socketIdleTimeoutMs,
    },
  });
}
