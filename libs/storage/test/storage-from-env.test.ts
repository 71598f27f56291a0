import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createS3Client } from '../src/s3-client';
import { continuationTokensSupported, startEmbeddedS3 } from '../src/embedded-s3';
import { storageFromEnv } from '../src/storage-from-env';

/** GETs `url`'s path and query from `serverEndpoint` with the given Host header, as a proxy would. */
function getVia(serverEndpoint: string, url: URL, host: string): Promise<{ status: number; body: string }> {
  const server = new URL(serverEndpoint);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: server.hostname, port: server.port, path: url.pathname + url.search, headers: { host } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1') }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('storageFromEnv', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'dinoq-env-'));
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts an embedded server with its data under DINOQ_DATA_DIR/s3 when no endpoint is set', async () => {
    const root = join(dataDir, 'nested');
    const directory = join(root, 's3');
    const storage = await storageFromEnv({
      DINOQ_DATA_DIR: root,
      S3_BUCKET: 'local-bucket',
      S3_ENDPOINT: ' ',
    });
    try {
      expect(storage.embedded).not.toBeNull();
      expect(storage.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(storage.bucket).toBe('local-bucket');
      expect(storage.store.listingMode).toBe(continuationTokensSupported() ? 'continuation-token' : 'marker');
      await storage.store.putJson('runs/r1/run.json', { status: 'queued' });
      expect(await storage.store.getJson('runs/r1/run.json')).toEqual({ status: 'queued' });
    } finally {
      await storage.close();
    }
    expect(await readdir(directory)).toContain('local-bucket');

    // A restart over the same folder sees the same objects.
    const again = await storageFromEnv({ DINOQ_DATA_DIR: root, S3_BUCKET: 'local-bucket' });
    try {
      expect(await again.store.getJson('runs/r1/run.json')).toEqual({ status: 'queued' });
    } finally {
      await again.close();
    }
  });

  it('uses S3_ENDPOINT with the given credentials and creates the bucket', async () => {
    const server = await startEmbeddedS3({ directory: dataDir, bucket: 'existing' });
    try {
      const storage = await storageFromEnv({
        S3_ENDPOINT: server.endpoint,
        S3_BUCKET: 'created-by-env',
        S3_REGION: 'us-east-1',
        S3_ACCESS_KEY_ID: 'S3RVER',
        S3_SECRET_ACCESS_KEY: 'S3RVER',
        DINOQ_DATA_DIR: join(dataDir, 'unused'),
      });
      try {
        expect(storage.embedded).toBeNull();
        expect(storage.endpoint).toBe(server.endpoint);
        await storage.store.putBytes('k', new Uint8Array([4, 2]));
        expect(Array.from(await storage.store.getBytes('k'))).toEqual([4, 2]);
      } finally {
        await storage.close();
      }
      expect(existsSync(join(dataDir, 'unused'))).toBe(false);
      expect(await readdir(dataDir)).toContain('created-by-env');

      await expect(
        storageFromEnv({
          S3_ENDPOINT: server.endpoint,
          S3_BUCKET: 'wrong-keys',
          S3_ACCESS_KEY_ID: 'nobody',
          S3_SECRET_ACCESS_KEY: 'nothing',
        }),
      ).rejects.toThrow(/wrong-keys/);
    } finally {
      await server.close();
    }
  });

  it('signs presigned URLs for S3_PUBLIC_ENDPOINT and keeps requests on S3_ENDPOINT', async () => {
    const server = await startEmbeddedS3({ directory: dataDir, bucket: 'public-urls' });
    const env = {
      S3_ENDPOINT: server.endpoint,
      S3_BUCKET: 'public-urls',
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
    };
    // Another name of the same server stands for the public host (s3rver reads any other host
    // name as a virtual-hosted bucket, so a made-up domain cannot be served here).
    const publicEndpoint = server.endpoint.replace('127.0.0.1', 'localhost');
    try {
      const storage = await storageFromEnv({ ...env, S3_PUBLIC_ENDPOINT: publicEndpoint });
      try {
        expect(storage.publicEndpoint).toBe(publicEndpoint);
        await storage.store.putBytes('runs/r1/out.bin', new Uint8Array([1, 2, 3]));
        const url = new URL(await storage.store.presignGet('runs/r1/out.bin', 60));
        expect(url.origin).toBe(publicEndpoint);
        expect(url.pathname).toBe('/public-urls/runs/r1/out.bin');
        // What reaches the server through a proxy that passes the Host header on: the signature holds.
        expect(await getVia(server.endpoint, url, url.host)).toEqual({ status: 200, body: '\x01\x02\x03' });
        // The signature covers the host: the same URL on the in-cluster host is refused.
        expect((await getVia(server.endpoint, url, new URL(server.endpoint).host)).status).toBe(403);
      } finally {
        await storage.close();
      }

      const plain = await storageFromEnv(env);
      try {
        expect(plain.publicEndpoint).toBe(server.endpoint);
        expect(new URL(await plain.store.presignGet('runs/r1/out.bin', 60)).origin).toBe(server.endpoint);
      } finally {
        await plain.close();
      }
      await expect(storageFromEnv({ ...env, S3_PUBLIC_ENDPOINT: 'files.example.test' })).rejects.toThrow(
        /S3_PUBLIC_ENDPOINT must be an http\(s\) URL, got "files.example.test"/,
      );
    } finally {
      await server.close();
    }
  });

  it('requires both keys or neither', () => {
    expect(() => createS3Client({ region: 'us-east-1', accessKeyId: 'only-one' })).toThrow(/secretAccessKey/);
    expect(() => createS3Client({ region: 'us-east-1', maxAttempts: 0 })).toThrow(/maxAttempts/);
  });

  it('refuses a bucket name S3 would refuse', async () => {
    await expect(startEmbeddedS3({ directory: dataDir, bucket: 'Bad_Bucket' })).rejects.toThrow(/Bad_Bucket/);
  });
});
