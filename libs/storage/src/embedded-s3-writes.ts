import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import FilesystemStore = require('s3rver/lib/stores/filesystem');
import S3Error = require('s3rver/lib/models/error');
import S3Object = require('s3rver/lib/models/object');

/*
 * Two fixes that make s3rver safe as the default store of every local run:
 *
 * 1. s3rver writes an object by truncating its file and streaming into it, so two overlapping PUTs
 *    to one key interleave their bytes (a torn object), and a Buffer body is acknowledged before
 *    it reaches the disk. `AtomicFilesystemStore` writes each body to a private temporary file and
 *    renames it over the object: a reader sees the old bytes or the new ones, never a mix.
 * 2. s3rver ignores `If-Match` and `If-None-Match` on PUT, which AWS S3 and MinIO honour. The
 *    `conditionalWrites` middleware serialises requests per key and checks the precondition under
 *    that lock, so compare-and-swap of JSON records behaves here as it does on real S3.
 *
 * Reads take the same lock: s3rver answers a GET from three files (the body, its MD5 and its size,
 * read one after another), and only under the lock do the three belong to one version. The lock
 * is held until the body file is open, not while it streams.
 */

interface S3rverObject {
  bucket: string;
  key: string;
  content: Buffer | Readable;
  metadata: Record<string, string>;
}

/** Files of one object are renamed in this order, so a reader never pairs an old body with a newer ETag. */
export class AtomicFilesystemStore extends FilesystemStore {
  async putObject(object: S3rverObject): Promise<{ size: number; md5: string }> {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await mkdir(dirname(objectPath), { recursive: true });
    const temporary = `${objectPath}.${randomBytes(6).toString('hex')}.partial`;
    const md5 = createHash('md5');
    let size = 0;
    const source = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
    try {
      await pipeline(
        source,
        async function* count(chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            md5.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(temporary),
      );
      const digest = md5.digest('hex');
      await this.putMetadataFiles(object, digest, temporary);
      return { size, md5: digest };
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  private async putMetadataFiles(object: S3rverObject, md5: string, temporaryBody: string): Promise<void> {
    const md5Path = this.getResourcePath(object.bucket, object.key, 'object.md5');
    const metadataPath = this.getResourcePath(object.bucket, object.key, 'metadata.json');
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    const suffix = `.${randomBytes(6).toString('hex')}.partial`;
    const metadata = Object.fromEntries(
      Object.entries(object.metadata).filter(
        ([name]) => S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-'),
      ),
    );
    await writeFile(md5Path + suffix, md5);
    await writeFile(metadataPath + suffix, JSON.stringify(metadata, null, 2));
    await rename(temporaryBody, objectPath);
    await rename(md5Path + suffix, md5Path);
    await rename(metadataPath + suffix, metadataPath);
  }
}

/** Runs functions one at a time per key; keys with nothing queued hold no memory. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, unknown>;
  get(header: string): string;
  store: FilesystemStore;
}

function objectAddress(path: string): { bucket: string; key: string } | null {
  const match = /^\/([^/]+)\/(.+)$/.exec(path);
  if (!match) return null;
  return { bucket: decodeURIComponent(match[1]), key: decodeURIComponent(match[2]) };
}

async function currentEtag(store: FilesystemStore, bucket: string, key: string): Promise<string | null> {
  try {
    return (await store.getMetadata(bucket, key)).etag;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Answers 412 like S3 when `If-None-Match: *` meets an object or `If-Match` names another ETag. */
function checkPrecondition(ctx: KoaContext, etag: string | null): void {
  const ifNoneMatch = ctx.get('if-none-match');
  const ifMatch = ctx.get('if-match');
  if (ifNoneMatch === '*' && etag !== null) {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
      Condition: 'If-None-Match',
    });
  }
  if (ifMatch && etag === null) {
    throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: ctx.path });
  }
  if (ifMatch && ifMatch !== '*' && ifMatch !== etag) {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
      Condition: 'If-Match',
    });
  }
}

const SERIALISED_METHODS = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);

/** Koa middleware: requests for one object run one at a time, write preconditions checked in turn. */
export function conditionalWrites(lock = new KeyedLock()) {
  return async function conditionalWrite(ctx: KoaContext, next: () => Promise<void>): Promise<void> {
    const address = SERIALISED_METHODS.has(ctx.method) ? objectAddress(ctx.path) : null;
    if (!address || 'partNumber' in ctx.query) return next();
    await lock.run(`${address.bucket}/${address.key}`, async () => {
      if (ctx.method === 'PUT' && (ctx.get('if-match') || ctx.get('if-none-match'))) {
        checkPrecondition(ctx, await currentEtag(ctx.store, address.bucket, address.key));
      }
      await next();
    });
  };
}
