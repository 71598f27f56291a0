import { createCipheriv } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import S3rver = require('s3rver');
import AWSAccount = require('s3rver/lib/models/account');
import { signedRequestsOnly, type EmbeddedS3Credentials } from './embedded-s3-auth';
import { AtomicFilesystemStore, conditionalWrites } from './embedded-s3-writes';

/*
 * s3rver in this process, for local runs and tests.
 *
 * Paginated listings: s3rver encrypts ListObjectsV2 continuation tokens with DES, which
 * OpenSSL 3 (Node >= 17) only offers with `--openssl-legacy-provider`. Run Node with
 * `NODE_OPTIONS=--openssl-legacy-provider` to page with tokens; without it, a truncated v2
 * page fails with HTTP 500. `ObjectStore` then pages with ListObjects markers instead, which
 * s3rver serves without DES (`storageFromEnv` picks that mode up front via
 * `continuationTokensSupported()`).
 */

/** The key pair the embedded server accepts unless it is given another (`credentials`). */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const EMBEDDED_S3_REGION = 'us-east-1';

export interface EmbeddedS3Options {
  /** Where objects live on disk; created if missing and kept after close. */
  directory: string;
  /** 0 picks a free port. */
  port?: number;
  /** Created at start unless it exists. */
  bucket: string;
  /** A loopback address (127.0.0.0/8, ::1 or localhost): the server is a local store, never exposed. */
  address?: string;
  /** Every request must be signed with this pair (Signature Version 4). */
  credentials?: EmbeddedS3Credentials;
}

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  bucket: string;
  directory: string;
  /** Whether this process can page ListObjectsV2 with s3rver's DES continuation tokens. */
  continuationTokens: boolean;
  close(): Promise<void>;
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** True when this Node process can use DES, i.e. runs with the OpenSSL legacy provider. */
export function continuationTokensSupported(): boolean {
  try {
    createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return true;
  } catch {
    return false;
  }
}

const LOOPBACK = /^(127(\.\d{1,3}){3}|::1|localhost)$/;

/**
 * Signed requests only (see embedded-s3-auth.ts), atomic object files and honoured write
 * preconditions (see embedded-s3-writes.ts), all ahead of s3rver's router.
 */
function harden(server: S3rver, directory: string, credentials: EmbeddedS3Credentials): void {
  // s3rver's own check needs the key id in its registry before it lets a V4 request through.
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(credentials.accessKeyId, credentials.secretAccessKey);
  const store = new AtomicFilesystemStore(directory);
  server.store = store;
  server.context.store = store;
  server.middleware.splice(
    server.middleware.length - 1,
    0,
    signedRequestsOnly(credentials),
    conditionalWrites(),
  );
}

export async function startEmbeddedS3(options: EmbeddedS3Options): Promise<EmbeddedS3> {
  const { bucket } = options;
  if (!BUCKET_NAME.test(bucket)) {
    throw new Error(
      `embedded S3 bucket ${JSON.stringify(bucket)}: must be 3-63 lowercase letters, digits, '.' or '-'`,
    );
  }
  const directory = resolve(options.directory);
  await mkdir(directory, { recursive: true });
  const address = options.address ?? '127.0.0.1';
  if (!LOOPBACK.test(address)) {
    throw new Error(
      `embedded S3 address ${JSON.stringify(address)}: must be a loopback address; use MinIO or S3 beyond this machine`,
    );
  }
  const server = new S3rver({
    address,
    port: options.port ?? 0,
    silent: true,
    directory,
    resetOnClose: false,
    configureBuckets: [{ name: bucket }],
  });
  harden(server, directory, options.credentials ?? EMBEDDED_S3_CREDENTIALS);
  let info;
  try {
    info = await server.run();
  } catch (error) {
    throw new Error(`embedded S3 could not start on ${address}:${options.port ?? 0} (data in ${directory})`, {
      cause: error,
    });
  }
  let closed: Promise<void> | undefined;
  return {
    endpoint: `http://${address}:${info.port}`,
    port: info.port,
    bucket,
    directory,
    continuationTokens: continuationTokensSupported(),
    close: () => (closed ??= server.close()),
  };
}
