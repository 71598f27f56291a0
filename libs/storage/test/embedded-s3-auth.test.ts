import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedS3 } from '../src/embedded-s3';
import { ObjectStore } from '../src/object-store';
import { clientFor, startTestStore, TEST_BUCKET, type TestStore } from './s3-fixture';
import { createS3Client } from '../src/s3-client';

/*
 * s3rver alone serves anonymous requests and never checks a Signature Version 4: the embedded
 * server must answer only requests signed with its key pair.
 */
describe('embedded S3 authentication', () => {
  let s3: TestStore;

  beforeAll(async () => {
    s3 = await startTestStore();
    await s3.store.putBytes('auth/object.bin', new Uint8Array([1, 2, 3]));
  });

  afterAll(async () => {
    await s3?.stop();
  });

  it('refuses anonymous reads, writes, deletes and listings with 403', async () => {
    const base = `${s3.server.endpoint}/${TEST_BUCKET}`;
    for (const [method, url] of [
      ['GET', `${base}/auth/object.bin`],
      ['PUT', `${base}/auth/object.bin`],
      ['DELETE', `${base}/auth/object.bin`],
      ['GET', `${base}?list-type=2`],
    ]) {
      const response = await fetch(url, { method, body: method === 'PUT' ? 'overwritten' : undefined });
      expect([method, url, response.status]).toEqual([method, url, 403]);
    }
    expect(Array.from(await s3.store.getBytes('auth/object.bin'))).toEqual([1, 2, 3]);
  });

  it('refuses a request signed with another secret', async () => {
    const client = createS3Client({
      endpoint: s3.server.endpoint,
      region: 'us-east-1',
      accessKeyId: 'S3RVER',
      secretAccessKey: 'not-the-secret',
      maxAttempts: 1,
    });
    const forged = new ObjectStore({ client, bucket: TEST_BUCKET });
    try {
      await expect(forged.putBytes('auth/object.bin', new Uint8Array([9]))).rejects.toThrow(
        /SignatureDoesNotMatch/,
      );
      await expect(forged.getBytes('auth/object.bin')).rejects.toThrow(/SignatureDoesNotMatch/);
    } finally {
      client.destroy();
    }
    expect(Array.from(await s3.store.getBytes('auth/object.bin'))).toEqual([1, 2, 3]);
  });

  it('serves a presigned URL, but not once it is altered or expired', async () => {
    const url = new URL(await s3.store.presignGet('auth/object.bin', 60));
    expect((await fetch(url)).status).toBe(200);

    const otherKey = new URL(url);
    otherKey.pathname = otherKey.pathname.replace('object.bin', 'other.bin');
    expect((await fetch(otherKey)).status).toBe(403);

    const longer = new URL(url);
    longer.searchParams.set('X-Amz-Expires', '604800');
    expect((await fetch(longer)).status).toBe(403);

    const expired = new URL(url);
    expired.searchParams.set('X-Amz-Date', '20200101T000000Z');
    expect((await fetch(expired)).status).toBe(403);
  });

  it('accepts a key pair of its own and refuses the default one then', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'dinoq-s3-keys-'));
    const credentials = { accessKeyId: 'local-key', secretAccessKey: 'local-secret-0123' };
    const server = await startEmbeddedS3({ directory, bucket: TEST_BUCKET, credentials });
    const own = createS3Client({ endpoint: server.endpoint, region: 'us-east-1', ...credentials });
    const defaults = clientFor(server.endpoint, 1);
    try {
      await new ObjectStore({ client: own, bucket: TEST_BUCKET }).putJson('k.json', { ok: true });
      await expect(
        new ObjectStore({ client: defaults, bucket: TEST_BUCKET }).getJson('k.json'),
      ).rejects.toThrow(/InvalidAccessKeyId|does not exist in our records/);
    } finally {
      own.destroy();
      defaults.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('binds only to loopback', async () => {
    await expect(
      startEmbeddedS3({ directory: tmpdir(), bucket: TEST_BUCKET, address: '0.0.0.0' }),
    ).rejects.toThrow(/must be a loopback address/);
    expect(new URL(s3.server.endpoint).hostname).toBe('127.0.0.1');
  });
});
