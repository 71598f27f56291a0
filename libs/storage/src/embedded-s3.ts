import { createCipheriv } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import S3rver = require('s3rver');

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

/** s3rver accepts only this key pair (it checks signatures). */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;
export const EMBEDDED_S3_REGION = 'us-east-1';

export interface EmbeddedS3Options {
  /** Where objects live on disk; created if missing and kept after close. */
  directory: string;
  /** 0 picks a free port. */
  port?: number;
  /** Created at start unless it exists. */
  bucket: string;
  address?: string;
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
  const server = new S3rver({
    address,
    port: options.port ?? 0,
    silent: true,
    directory,
    resetOnClose: false,
    configureBuckets: [{ name: bucket }],
  });
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
