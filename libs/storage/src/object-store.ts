import { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { BucketLister, type ListingMode, type ObjectSummary } from './bucket-listing';
import { InvalidIdError, NotFoundError, StorageError, UnreadableObjectError } from './errors';
import { KeyListing } from './key-listing';
import { describeError, httpStatusOf, isMissingObject } from './s3-errors';

export interface ObjectStoreOptions {
  client: S3Client;
  bucket: string;
  /** Defaults to `continuation-token`; it falls back to `marker` by itself when a server cannot page with tokens. */
  listing?: ListingMode;
  /** Keys per listing request; leave unset except to exercise paging. */
  listPageSize?: number;
  /**
   * Signs presigned URLs only (no request goes through it): a client configured with the endpoint
   * browsers and laptops reach, where `client` uses an in-cluster one. Defaults to `client`.
   */
  presignClient?: S3Client;
}

export interface PutStreamOptions {
  /** Known length: one streamed PutObject, nothing buffered. Unknown: a multipart upload of buffered parts. */
  contentLength?: number;
  contentType?: string;
  /** Multipart part size; S3 requires at least 5 MiB. */
  partSizeBytes?: number;
  /** Parts uploaded in parallel; memory use is about partSizeBytes × partsInParallel. */
  partsInParallel?: number;
}

/** A value with the ETag of the object it was read from, for compare-and-swap. */
export interface Versioned<T> {
  value: T;
  etag: string;
}

/**
 * When a conditional write may happen: only if no object exists under the key, or only if the
 * object still has the ETag it was read with. AWS S3 and MinIO honour both; so does the embedded
 * server (see embedded-s3-writes.ts).
 */
export type WriteCondition = { ifAbsent: true } | { ifEtag: string };

/** Inclusive byte range, as in an HTTP `Range` header. */
export interface ByteRange {
  start: number;
  end?: number;
}

const OCTET_STREAM = 'application/octet-stream';
const JSON_TYPE = 'application/json';
const DELETE_BATCH = 1000;
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
const MIN_PART_BYTES = 5 * 1024 * 1024;

function assertKey(key: string, field = 'key'): void {
  if (typeof key !== 'string' || key.length === 0)
    throw new InvalidIdError(field, key, 'must be a non-empty string');
  checkSegments(key, field);
}

function assertPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new InvalidIdError('prefix', prefix, 'must be a string');
  if (prefix.length > 0) checkSegments(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix, 'prefix');
}

// Filesystem-backed servers map keys to paths, so dot segments and empty segments are refused here.
function checkSegments(path: string, field: string): void {
  if (path.startsWith('/')) throw new InvalidIdError(field, path, 'must not start with "/"');
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidIdError(field, path, 'must not contain empty, "." or ".." segments');
    }
  }
}

function jsonBytes(key: string, value: unknown, described: string): Uint8Array {
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) throw new StorageError(`cannot store ${described}: value is not JSON`);
  return new TextEncoder().encode(`${text}\n`);
}

/** One bucket of an S3-compatible server, with the operations this project needs. */
export class ObjectStore {
  readonly client: S3Client;
  readonly bucket: string;
  private readonly presignClient: S3Client;
  private readonly lister: BucketLister;

  constructor(options: ObjectStoreOptions) {
    if (!options.bucket) throw new Error('ObjectStore: bucket must be a non-empty string');
    this.client = options.client;
    this.bucket = options.bucket;
    this.presignClient = options.presignClient ?? options.client;
    this.lister = new BucketLister(
      options.client,
      options.bucket,
      options.listing ?? 'continuation-token',
      options.listPageSize,
    );
  }

  /** How listings are paged right now (it changes once if the server cannot page with tokens). */
  get listingMode(): ListingMode {
    return this.lister.mode;
  }

  /** @throws NotFoundError naming the key when the object does not exist. */
  async getBytes(key: string): Promise<Uint8Array> {
    assertKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new StorageError(`GetObject ${this.describe(key)} returned no body`);
      return await out.Body.transformToByteArray();
    } catch (error) {
      throw this.fail('GetObject', key, error);
    }
  }

  /** A Node stream of the object (or of a byte range of it), for bodies too large to hold. */
  async getStream(key: string, range?: ByteRange): Promise<Readable> {
    assertKey(key);
    const rangeHeader = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: rangeHeader }),
      );
      if (!(out.Body instanceof Readable)) {
        throw new StorageError(`GetObject ${this.describe(key)} did not return a Node stream`);
      }
      return out.Body;
    } catch (error) {
      throw this.fail('GetObject', key, error);
    }
  }

  /**
   * Parsed JSON, or null when the object does not exist.
   * @throws UnreadableObjectError naming the key when the bytes are not JSON.
   */
  async getJson<T>(key: string): Promise<T | null> {
    return (await this.getJsonVersioned<T>(key))?.value ?? null;
  }

  /** Parsed JSON with the ETag it was read at, or null when the object does not exist. */
  async getJsonVersioned<T>(key: string): Promise<Versioned<T> | null> {
    assertKey(key);
    let bytes: Uint8Array;
    let etag: string;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new StorageError(`GetObject ${this.describe(key)} returned no body`);
      bytes = await out.Body.transformToByteArray();
      etag = out.ETag ?? '';
    } catch (error) {
      const failure = this.fail('GetObject', key, error);
      if (failure instanceof NotFoundError) return null;
      throw failure;
    }
    try {
      return { value: JSON.parse(new TextDecoder().decode(bytes)) as T, etag };
    } catch (error) {
      throw new UnreadableObjectError(key, `not valid JSON (${(error as Error).message})`);
    }
  }

  /**
   * Writes JSON only when `condition` holds; returns the new ETag, or null when it did not hold
   * (another writer got there first). With `ifEtag`, a deleted object also counts as not holding.
   */
  async putJsonIf(key: string, value: unknown, condition: WriteCondition): Promise<string | null> {
    assertKey(key);
    const body = jsonBytes(key, value, this.describe(key));
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body,
          ContentType: JSON_TYPE,
          ...('ifAbsent' in condition ? { IfNoneMatch: '*' } : { IfMatch: condition.ifEtag }),
        }),
      );
      return out.ETag ?? '';
    } catch (error) {
      const status = httpStatusOf(error);
      if (status === 412 || status === 409 || (status === 404 && 'ifEtag' in condition)) return null;
      throw this.fail('PutObject', key, error);
    }
  }

  async putBytes(key: string, bytes: Uint8Array, contentType = OCTET_STREAM): Promise<void> {
    assertKey(key);
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: bytes, ContentType: contentType }),
      );
    } catch (error) {
      throw this.fail('PutObject', key, error);
    }
  }

  /** Writes only if no object exists under the key (`If-None-Match: *`); false when one does. */
  async putBytesIfAbsent(key: string, bytes: Uint8Array, contentType = OCTET_STREAM): Promise<boolean> {
    assertKey(key);
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: bytes,
          ContentType: contentType,
          IfNoneMatch: '*',
        }),
      );
      return true;
    } catch (error) {
      if (httpStatusOf(error) === 412) return false;
      throw this.fail('PutObject', key, error);
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.putBytes(key, jsonBytes(key, value, this.describe(key)), JSON_TYPE);
  }

  /** Uploads a stream. A stream body is consumed once, so a failed request is not retried. */
  async putStream(key: string, body: Readable, options: PutStreamOptions = {}): Promise<void> {
    assertKey(key);
    const contentType = options.contentType ?? OCTET_STREAM;
    try {
      if (options.contentLength !== undefined) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: key,
            Body: body,
            ContentLength: options.contentLength,
            ContentType: contentType,
          }),
        );
        return;
      }
      const partSize = options.partSizeBytes ?? MIN_PART_BYTES;
      if (partSize < MIN_PART_BYTES) {
        throw new StorageError(
          `putStream ${this.describe(key)}: partSizeBytes must be at least ${MIN_PART_BYTES}`,
        );
      }
      await new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: contentType },
        partSize,
        queueSize: options.partsInParallel ?? 2,
      }).done();
    } catch (error) {
      throw this.fail('PutObject', key, error);
    }
  }

  async exists(key: string): Promise<boolean> {
    assertKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (error) {
      if (isMissingObject(error)) return false;
      throw this.fail('HeadObject', key, error);
    }
  }

  /** The object's ETag, or null when it does not exist. */
  async etag(key: string): Promise<string | null> {
    assertKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return out.ETag ?? '';
    } catch (error) {
      if (isMissingObject(error)) return null;
      throw this.fail('HeadObject', key, error);
    }
  }

  /** Every key under the prefix across all pages: await it for an array or `for await` it for a stream. */
  list(prefix: string): KeyListing {
    assertPrefix(prefix);
    const objects = () => this.lister.objects(prefix);
    return new KeyListing(async function* keys() {
      for await (const object of objects()) yield object.key;
    });
  }

  /** Like `list`, with sizes and modification times. */
  listObjects(prefix: string): AsyncGenerator<ObjectSummary> {
    assertPrefix(prefix);
    return this.lister.objects(prefix);
  }

  /** Deleting a missing key is not an error (S3 semantics). */
  async delete(key: string): Promise<void> {
    assertKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (error) {
      throw this.fail('DeleteObject', key, error);
    }
  }

  /** Deletes every object under a non-empty prefix; returns how many were deleted. */
  async deletePrefix(prefix: string): Promise<number> {
    assertPrefix(prefix);
    if (prefix.length === 0)
      throw new InvalidIdError('prefix', prefix, 'must not be empty (that would empty the bucket)');
    let batch: string[] = [];
    let deleted = 0;
    for await (const key of this.list(prefix)) {
      batch.push(key);
      if (batch.length === DELETE_BATCH) {
        deleted += await this.deleteBatch(prefix, batch);
        batch = [];
      }
    }
    if (batch.length > 0) deleted += await this.deleteBatch(prefix, batch);
    return deleted;
  }

  /**
   * A URL anyone can GET for `expiresSeconds` without credentials, on the presign client's endpoint
   * (the signature covers its host, so a proxy in front of the server must pass Host unchanged).
   */
  async presignGet(key: string, expiresSeconds = 900): Promise<string> {
    assertKey(key);
    if (!Number.isInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > MAX_PRESIGN_SECONDS) {
      throw new StorageError(
        `presignGet ${this.describe(key)}: expiresSeconds must be in [1, ${MAX_PRESIGN_SECONDS}]`,
      );
    }
    return getSignedUrl(this.presignClient, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: expiresSeconds,
    });
  }

  /** Creates the bucket unless it exists. */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (error) {
      if (httpStatusOf(error) !== 404) {
        throw new StorageError(`HeadBucket s3://${this.bucket} failed: ${describeError(error)}`, {
          cause: error,
        });
      }
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      if (error instanceof Error && error.name === 'BucketAlreadyOwnedByYou') return;
      throw new StorageError(`CreateBucket s3://${this.bucket} failed: ${describeError(error)}`, {
        cause: error,
      });
    }
  }

  // --- the blob-store shape used by the data pipeline -------------------------------------------

  get(key: string): Promise<Uint8Array> {
    return this.getBytes(key);
  }

  put(key: string, bytes: Uint8Array): Promise<void> {
    return this.putBytes(key, bytes);
  }

  // ------------------------------------------------------------------------------------------------

  private async deleteBatch(prefix: string, keys: string[]): Promise<number> {
    let out;
    try {
      out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
        }),
      );
    } catch (error) {
      throw new StorageError(
        `DeleteObjects under s3://${this.bucket}/${prefix} failed: ${describeError(error)}`,
        {
          cause: error,
        },
      );
    }
    const failures = out.Errors ?? [];
    if (failures.length > 0) {
      const named = failures
        .slice(0, 5)
        .map((failure) => `${failure.Key} (${failure.Code})`)
        .join(', ');
      throw new StorageError(
        `DeleteObjects under s3://${this.bucket}/${prefix}: ${failures.length} failed: ${named}`,
      );
    }
    return keys.length;
  }

  private describe(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  private fail(operation: string, key: string, error: unknown): Error {
    if (error instanceof NotFoundError || error instanceof StorageError) return error;
    if (isMissingObject(error)) return new NotFoundError(key, this.bucket);
    return new StorageError(`${operation} ${this.describe(key)} failed: ${describeError(error)}`, {
      cause: error,
    });
  }
}
