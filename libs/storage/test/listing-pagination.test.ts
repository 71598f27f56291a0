import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { continuationTokensSupported } from '../src/embedded-s3';
import { ObjectStore } from '../src/object-store';
import { clientFor, startChildS3, startTestStore, TEST_BUCKET } from './s3-fixture';

// s3rver pages ListObjectsV2 with DES-encrypted tokens, which Node's OpenSSL 3 refuses unless
// the server's process runs with --openssl-legacy-provider. These tests run s3rver in child
// processes with and without that flag, so they cover both cases whatever flags Jest has.

const KEYS = Array.from(
  { length: 11 },
  (_, index) => `runs/r/metrics/${String(index).padStart(6, '0')}.jsonl`,
);
const PAGE_SIZE = 3;

async function fill(store: ObjectStore): Promise<void> {
  await Promise.all(KEYS.map((key) => store.putBytes(key, new TextEncoder().encode(key))));
  await store.putBytes('runs/other/run.json', new Uint8Array([1]));
}

describe('paginated listing', () => {
  it('pages with continuation tokens when s3rver runs with the legacy provider', async () => {
    const server = await startChildS3(true);
    const client = clientFor(server.endpoint);
    try {
      const store = new ObjectStore({ client, bucket: TEST_BUCKET, listPageSize: PAGE_SIZE });
      await fill(store);
      expect(await store.list('runs/r/')).toEqual(KEYS);
      expect(store.listingMode).toBe('continuation-token');
    } finally {
      client.destroy();
      await server.stop();
    }
  });

  it('falls back to markers when s3rver cannot make tokens, and lists every key', async () => {
    const server = await startChildS3(false);
    const client = clientFor(server.endpoint, 1);
    try {
      const store = new ObjectStore({ client, bucket: TEST_BUCKET, listPageSize: PAGE_SIZE });
      await fill(store);
      await expect(
        client.send(new ListObjectsV2Command({ Bucket: TEST_BUCKET, Prefix: 'runs/', MaxKeys: PAGE_SIZE })),
      ).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
      expect(store.listingMode).toBe('continuation-token');

      const streamed: string[] = [];
      for await (const key of store.list('runs/r/')) streamed.push(key);
      expect(streamed).toEqual(KEYS);
      expect(store.listingMode).toBe('marker');
      expect(await store.list('runs/')).toEqual(['runs/other/run.json', ...KEYS]);
    } finally {
      client.destroy();
      await server.stop();
    }
  });

  it('the embedded server picks the mode that works in this process', async () => {
    const mode = continuationTokensSupported() ? 'continuation-token' : 'marker';
    const s3 = await startTestStore({ listing: mode, listPageSize: PAGE_SIZE });
    try {
      expect(s3.server.continuationTokens).toBe(continuationTokensSupported());
      await fill(s3.store);
      expect(await s3.store.list('runs/r/')).toEqual(KEYS);
      expect(s3.store.listingMode).toBe(mode);
      expect(await s3.store.deletePrefix('runs/')).toBe(KEYS.length + 1);
    } finally {
      await s3.stop();
    }
  });
});
