import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  continuationTokensSupported,
  startEmbeddedS3,
  type EmbeddedS3,
} from './embedded-s3';
import { ObjectStore } from './object-store';
import { createS3Client, type S3ClientOptions } from './s3-client';

export interface StorageEnv {
  /** Unset: an embedded s3rver is started with its data under DINOQ_DATA_DIR/s3. */
  S3_ENDPOINT?: string;
  S3_BUCKET?: string;
  S3_REGION?: string;
  /**
   * With an endpoint and no keys, the SDK's default credential chain applies (IAM roles, profiles).
   * Without an endpoint, the embedded server accepts only requests signed with these keys
   * (default: EMBEDDED_S3_CREDENTIALS).
   */
  S3_ACCESS_KEY_ID?: string;
  S3_SECRET_ACCESS_KEY?: string;
  /**
   * The endpoint browsers and laptops reach the same server at (e.g. `https://files.example.com`
   * where S3_ENDPOINT is `http://minio:9000`); used only to sign presigned URLs. Unset: S3_ENDPOINT.
   */
  S3_PUBLIC_ENDPOINT?: string;
  DINOQ_DATA_DIR?: string;
}

export const STORAGE_ENV_DEFAULTS = {
  S3_BUCKET: 'dinoq',
  S3_REGION: 'us-east-1',
  DINOQ_DATA_DIR: '.data',
} as const;

export interface Storage {
  store: ObjectStore;
  client: S3Client;
  bucket: string;
  endpoint: string | undefined;
  /** The endpoint presigned URLs point at: S3_PUBLIC_ENDPOINT, else `endpoint`. */
  publicEndpoint: string | undefined;
  /** The in-process server when no endpoint was configured, else null. */
  embedded: EmbeddedS3 | null;
  /** Releases the client's sockets and stops the embedded server, if any. */
  close(): Promise<void>;
}

function setting(env: StorageEnv, name: keyof StorageEnv): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** S3_PUBLIC_ENDPOINT, checked before anything starts; undefined when unset. */
function publicEndpointSetting(env: StorageEnv): string | undefined {
  const endpoint = setting(env, 'S3_PUBLIC_ENDPOINT');
  if (endpoint === undefined) return undefined;
  const protocol = URL.canParse(endpoint) ? new URL(endpoint).protocol : null;
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new Error(`S3_PUBLIC_ENDPOINT must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  }
  return endpoint;
}

/**
 * A second client, with the same region and credentials, whose only use is signing URLs for the
 * public endpoint (presigning sends no request); none when there is no public endpoint.
 */
function presignerFor(
  publicEndpoint: string | undefined,
  options: Omit<S3ClientOptions, 'endpoint'>,
): S3Client | undefined {
  return publicEndpoint === undefined ? undefined : createS3Client({ endpoint: publicEndpoint, ...options });
}

/**
 * Storage as the environment describes it: an external S3-compatible server when S3_ENDPOINT is
 * set (its bucket is created if missing), otherwise an embedded s3rver on 127.0.0.1.
 */
export async function storageFromEnv(env: StorageEnv = process.env): Promise<Storage> {
  const bucket = setting(env, 'S3_BUCKET') ?? STORAGE_ENV_DEFAULTS.S3_BUCKET;
  const endpoint = setting(env, 'S3_ENDPOINT');
  const publicEndpoint = publicEndpointSetting(env);

  if (endpoint === undefined) {
    const accessKeyId = setting(env, 'S3_ACCESS_KEY_ID');
    const secretAccessKey = setting(env, 'S3_SECRET_ACCESS_KEY');
    const credentials =
      accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : EMBEDDED_S3_CREDENTIALS;
    const embedded = await startEmbeddedS3({
      credentials,
      // The local data root is shared with the CLI; the embedded server keeps its objects in s3/.
      directory: join(setting(env, 'DINOQ_DATA_DIR') ?? STORAGE_ENV_DEFAULTS.DINOQ_DATA_DIR, 's3'),
      bucket,
    });
    const options = { region: EMBEDDED_S3_REGION, ...credentials };
    const client = createS3Client({ endpoint: embedded.endpoint, ...options });
    const presigner = presignerFor(publicEndpoint, options);
    const store = new ObjectStore({
      client,
      bucket,
      listing: continuationTokensSupported() ? 'continuation-token' : 'marker',
      presignClient: presigner,
    });
    return {
      store,
      client,
      bucket,
      endpoint: embedded.endpoint,
      publicEndpoint: publicEndpoint ?? embedded.endpoint,
      embedded,
      close: async () => {
        presigner?.destroy();
        client.destroy();
        await embedded.close();
      },
    };
  }

  const options = {
    region: setting(env, 'S3_REGION') ?? STORAGE_ENV_DEFAULTS.S3_REGION,
    accessKeyId: setting(env, 'S3_ACCESS_KEY_ID'),
    secretAccessKey: setting(env, 'S3_SECRET_ACCESS_KEY'),
  };
  const client = createS3Client({ endpoint, ...options });
  const presigner = presignerFor(publicEndpoint, options);
  const close = async () => {
    presigner?.destroy();
    client.destroy();
  };
  const store = new ObjectStore({ client, bucket, presignClient: presigner });
  try {
    await store.ensureBucket();
  } catch (error) {
    await close();
    throw error;
  }
  return {
    store,
    client,
    bucket,
    endpoint,
    publicEndpoint: publicEndpoint ?? endpoint,
    embedded: null,
    close,
  };
}
