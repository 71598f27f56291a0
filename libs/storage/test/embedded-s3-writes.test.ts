import { randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { UnreadableObjectError } from '../src/errors';
import { KeyedLock } from '../src/embedded-s3-writes';
import { startTestStore, TEST_BUCKET, type TestStore } from './s3-fixture';

/*
 * The embedded server is every local user's default store and is written by the API and by every
 * worker at once: overlapping writes to one key must never tear, and conditional writes must hold
 * as they do on AWS S3 and MinIO.
 */
describe('embedded S3 writes', () => {
  let s3: TestStore;

  beforeAll(async () => {
    s3 = await startTestStore();
  });

  afterAll(async () => {
    await s3?.stop();
  });

  it('never stores a mix of two overlapping PUTs to one key', async () => {
    // Bodies large enough to be written in many chunks, different in every byte position.
    const bodies = [randomBytes(3 << 20), randomBytes(3 << 20), randomBytes(1 << 20)];
    const keys = Array.from({ length: 12 }, (_, index) => `torn/object-${index}.bin`);
    await Promise.all(keys.flatMap((key) => bodies.map((body) => s3.store.putBytes(key, body))));
    for (const key of keys) {
      const stored = Buffer.from(await s3.store.getBytes(key));
      expect(bodies.some((body) => body.equals(stored))).toBe(true);
    }
  });

  it('answers every read with one whole version while writers replace the object', async () => {
    const version = (n: number) => ({ n, padding: 'x'.repeat(100 + ((n * 7919) % 5000)) });
    await s3.store.putJson('reads/record.json', version(0));
    const writers = Array.from({ length: 30 }, (_, n) =>
      s3.store.putJson('reads/record.json', version(n + 1)),
    );
    const readers = Array.from({ length: 60 }, () =>
      s3.store.getJsonVersioned<{ n: number }>('reads/record.json'),
    );
    const [, reads] = await Promise.all([Promise.all(writers), Promise.all(readers)]);
    for (const read of reads) expect(read!.value).toEqual(version(read!.value.n));
    // The ETag travels with its body: rewriting the body read must succeed only on that ETag.
    const latest = await s3.store.getJsonVersioned<{ n: number }>('reads/record.json');
    expect(await s3.store.putJsonIf('reads/record.json', { n: -1 }, { ifEtag: latest!.etag })).not.toBeNull();
  });

  it('honours If-None-Match: of concurrent creates exactly one wins', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, writer) =>
        s3.store.putJsonIf('cas/created.json', { writer }, { ifAbsent: true }),
      ),
    );
    const winners = results.flatMap((etag, writer) => (etag === null ? [] : [writer]));
    expect(winners).toHaveLength(1);
    expect(await s3.store.getJson('cas/created.json')).toEqual({ writer: winners[0] });
  });

  it('honours If-Match: concurrent read-modify-write loses no increment', async () => {
    await s3.store.putJson('cas/counter.json', { count: 0 });
    const increment = async () => {
      for (;;) {
        const current = await s3.store.getJsonVersioned<{ count: number }>('cas/counter.json');
        const written = await s3.store.putJsonIf(
          'cas/counter.json',
          { count: current!.value.count + 1 },
          { ifEtag: current!.etag },
        );
        if (written !== null) return;
      }
    };
    await Promise.all(Array.from({ length: 16 }, increment));
    expect(await s3.store.getJson('cas/counter.json')).toEqual({ count: 16 });
  });

  it('refuses If-Match on a deleted object and a stale ETag', async () => {
    await s3.store.putJson('cas/gone.json', { v: 1 });
    const read = await s3.store.getJsonVersioned('cas/gone.json');
    await s3.store.putJson('cas/gone.json', { v: 2 });
    expect(await s3.store.putJsonIf('cas/gone.json', { v: 3 }, { ifEtag: read!.etag })).toBeNull();
    await s3.store.delete('cas/gone.json');
    expect(await s3.store.putJsonIf('cas/gone.json', { v: 4 }, { ifEtag: read!.etag })).toBeNull();
    expect(await s3.store.getJson('cas/gone.json')).toBeNull();
  });

  it('names the key of an object that is not JSON', async () => {
    await s3.client.send(
      new PutObjectCommand({
        Bucket: TEST_BUCKET,
        Key: 'bad/run.json',
        Body: '{"status": "running"}\u0000\u0013xx',
      }),
    );
    const read = s3.store.getJson('bad/run.json');
    await expect(read).rejects.toThrow(UnreadableObjectError);
    await expect(s3.store.getJson('bad/run.json')).rejects.toMatchObject({ key: 'bad/run.json' });
  });
});

describe('KeyedLock', () => {
  it('runs work for one key in order and different keys side by side', async () => {
    const lock = new KeyedLock();
    const events: string[] = [];
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    const first = lock.run('a', async () => {
      events.push('a1 start');
      await firstHeld;
      events.push('a1 end');
    });
    const second = lock.run('a', async () => {
      events.push('a2');
    });
    await lock.run('b', async () => {
      events.push('b');
    });
    releaseFirst();
    await Promise.all([first, second]);
    expect(events).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
  });

  it('releases the key when the work throws', async () => {
    const lock = new KeyedLock();
    await expect(lock.run('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(lock.run('k', async () => 'next')).resolves.toBe('next');
  });
});
