import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { InvalidIdError, NotFoundError } from '../src/errors';
import { ObjectStore } from '../src/object-store';
import { startTestStore, TEST_BUCKET, type TestStore } from './s3-fixture';

/** The shape the data pipeline expects of a blob store (declared there; restated to check the fit). */
interface BlobStore {
  get(key: string): Promise<Uint8Array>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  list?(prefix: string): Promise<string[]>;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('ObjectStore against s3rver', () => {
  let s3: TestStore;
  let scratch: string;

  beforeAll(async () => {
    s3 = await startTestStore();
    scratch = await mkdtemp(join(tmpdir(), 'dinoq-upload-'));
  });

  afterAll(async () => {
    await s3?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('round-trips bytes and JSON', async () => {
    const bytes = new Uint8Array([0, 1, 2, 254, 255]);
    await s3.store.putBytes('t/bytes.bin', bytes);
    expect(Array.from(await s3.store.getBytes('t/bytes.bin'))).toEqual([0, 1, 2, 254, 255]);

    const record = { runId: 'run-1', step: 12, nested: { lr: 5e-4, tags: ['a', 'b'] } };
    await s3.store.putJson('t/record.json', record);
    expect(await s3.store.getJson<typeof record>('t/record.json')).toEqual(record);
    expect(await s3.store.getJson('t/absent.json')).toBeNull();

    const head = await s3.client.send(new GetObjectCommand({ Bucket: TEST_BUCKET, Key: 't/record.json' }));
    expect(head.ContentType).toBe('application/json');
    await head.Body?.transformToByteArray();
  });

  it('reports a missing key with NotFoundError naming the key', async () => {
    const missing = 'runs/run-1/checkpoints/000000007/teacher.bin';
    await expect(s3.store.getBytes(missing)).rejects.toThrow(NotFoundError);
    await expect(s3.store.get(missing)).rejects.toThrow(missing);
    await expect(s3.store.get(missing)).rejects.toMatchObject({ code: 'BLOB_NOT_FOUND', key: missing });
    await expect(s3.store.getStream(missing)).rejects.toMatchObject({ name: 'NotFoundError', key: missing });
    expect(await s3.store.exists(missing)).toBe(false);
  });

  it('refuses keys that are empty or path-like', async () => {
    await expect(s3.store.getBytes('')).rejects.toThrow(InvalidIdError);
    await expect(s3.store.putBytes('runs/../etc', new Uint8Array(1))).rejects.toThrow(/key/);
    await expect(s3.store.exists('/abs')).rejects.toThrow(InvalidIdError);
    expect(() => s3.store.list('a//b/')).toThrow(InvalidIdError);
  });

  it('uploads a stream of known length byte-exactly (no aws-chunked framing stored)', async () => {
    const payload = randomBytes(6 * 1024 * 1024 + 123);
    const path = join(scratch, 'payload.bin');
    await writeFile(path, payload);
    await s3.store.putStream('t/streamed.bin', createReadStream(path, { highWaterMark: 64 * 1024 }), {
      contentLength: payload.length,
    });
    const stored = await s3.store.getBytes('t/streamed.bin');
    expect(stored.byteLength).toBe(payload.length);
    expect(sha256(stored)).toBe(sha256(payload));
  });

  it('uploads a stream of unknown length in parts byte-exactly', async () => {
    const payload = randomBytes(11 * 1024 * 1024 + 7);
    const chunks = function* () {
      for (let offset = 0; offset < payload.length; offset += 1 << 20)
        yield payload.subarray(offset, offset + (1 << 20));
    };
    await s3.store.putStream('t/multipart.bin', Readable.from(chunks()));
    const stream = await s3.store.getStream('t/multipart.bin');
    const stored = await readAll(stream);
    expect(stored.length).toBe(payload.length);
    expect(sha256(stored)).toBe(sha256(payload));
  });

  it('streams a byte range', async () => {
    await s3.store.putBytes('t/range.bin', new Uint8Array([10, 11, 12, 13, 14, 15]));
    const part = await readAll(await s3.store.getStream('t/range.bin', { start: 2, end: 4 }));
    expect(Array.from(part)).toEqual([12, 13, 14]);
  });

  it('lists, deletes and deletes by prefix', async () => {
    const keys = ['p/a/1', 'p/a/2', 'p/b/1', 'q/1'];
    for (const key of keys) await s3.store.putBytes(key, new TextEncoder().encode(key));
    expect(await s3.store.list('p/')).toEqual(['p/a/1', 'p/a/2', 'p/b/1']);
    const iterated: string[] = [];
    for await (const key of s3.store.list('p/a/')) iterated.push(key);
    expect(iterated).toEqual(['p/a/1', 'p/a/2']);

    const summaries = [];
    for await (const summary of s3.store.listObjects('p/b/')) summaries.push(summary);
    expect(summaries).toMatchObject([{ key: 'p/b/1', size: 5 }]);

    await s3.store.delete('p/b/1');
    await s3.store.delete('p/b/1');
    expect(await s3.store.exists('p/b/1')).toBe(false);
    expect(await s3.store.deletePrefix('p/')).toBe(2);
    expect(await s3.store.list('p/')).toEqual([]);
    expect(await s3.store.exists('q/1')).toBe(true);
    await expect(s3.store.deletePrefix('')).rejects.toThrow(/prefix/);
  });

  it('presigns a GET that fetch() can read without credentials', async () => {
    const bytes = new Uint8Array(randomBytes(4096));
    await s3.store.putBytes('t/shared.bin', bytes);
    const url = await s3.store.presignGet('t/shared.bin', 60);
    expect(url).toContain('X-Amz-Signature=');
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(sha256(new Uint8Array(await response.arrayBuffer()))).toBe(sha256(bytes));
  });

  it('fits the blob-store shape of the data pipeline', async () => {
    const blobs: BlobStore = s3.store;
    await blobs.put('datasets/tiny/shards/train-000000.tar', new Uint8Array([1, 2, 3]));
    expect(Array.from(await blobs.get('datasets/tiny/shards/train-000000.tar'))).toEqual([1, 2, 3]);
    expect(await blobs.list!('datasets/tiny/')).toEqual(['datasets/tiny/shards/train-000000.tar']);
  });

  it('creates a missing bucket once', async () => {
    const other = new ObjectStore({ client: s3.client, bucket: 'dinoq-second' });
    await other.ensureBucket();
    await other.ensureBucket();
    await other.putBytes('k', new Uint8Array([9]));
    expect(Array.from(await other.getBytes('k'))).toEqual([9]);
    expect(await s3.store.exists('k')).toBe(false);
  });
});
