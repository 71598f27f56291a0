import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DatasetSourceError,
  ShardIntegrityError,
  encodePng,
  importFashionMnist,
  readManifest,
  shardKey,
} from '@dinoq/data';
import { StorageError } from '@dinoq/storage';
import { importDataset } from '../src/compute/handlers/import-dataset';
import { serializeError } from '../src/compute/protocol';
import { startComputeFixture, type ComputeFixture } from './compute-fixture';

/*
 * Failures that no attempt can mend reach the parent marked unrecoverable, so BullMQ fails the job
 * at once instead of retrying it three more times: the handlers run against a real s3rver here and
 * their errors go through the same serialisation the compute process sends to the worker.
 */

async function failureOf(work: Promise<unknown>): Promise<Error> {
  try {
    await work;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a failure');
}

describe('errors that can never succeed are unrecoverable', () => {
  let fixture: ComputeFixture;

  beforeAll(async () => {
    fixture = await startComputeFixture();
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('an image-folder import whose prefix holds images but no class folders', async () => {
    const png = encodePng(new Uint8Array(4 * 4).fill(128), 4, 4, 1);
    await fixture.ctx.store.putBytes('uploads/flat/a.png', png);
    await fixture.ctx.store.putBytes('uploads/flat/b.png', png);
    const job = { datasetName: 'flat', source: { kind: 'image-folder' as const, prefix: 'uploads/flat' } };
    const error = await failureOf(importDataset(fixture.ctx, fixture.scope('import', job), job));
    expect(error).toBeInstanceOf(DatasetSourceError);
    expect(error.message).toMatch(/has no class sub-folders/);
    expect(serializeError(error)).toMatchObject({ name: 'DatasetSourceError', unrecoverable: true });
  });

  it('a Fashion-MNIST import without its source files', async () => {
    const srcDir = join(tmpdir(), 'dinoq-no-such-fashion-mnist');
    const error = await failureOf(importFashionMnist({ srcDir, store: fixture.ctx.store, name: 'nosource' }));
    expect(error).toBeInstanceOf(DatasetSourceError);
    expect(error.message).toContain(join(srcDir, 'train-images-idx3-ubyte.gz'));
    expect(error.message).toContain('dataset-fashion-mnist');
    expect(serializeError(error).unrecoverable).toBe(true);
  });

  it('a dataset shard whose bytes no longer match the manifest', async () => {
    const job = { datasetName: 'fm', source: { kind: 'fashion-mnist' as const, limit: 8 } };
    await importDataset(fixture.ctx, fixture.scope('import', job), job);
    const manifest = await readManifest(fixture.ctx.store, 'fm');
    const key = shardKey('fm', manifest.splits.train.shards[0].file);
    const bytes = await fixture.ctx.store.getBytes(key);
    bytes[bytes.length - 1] ^= 0xff; // same size, other content
    await fixture.ctx.store.putBytes(key, bytes);
    const error = await failureOf(fixture.ctx.datasets.split('fm', 'train'));
    expect(error).toBeInstanceOf(ShardIntegrityError);
    expect(error.message).toMatch(/sha256 .* does not match the manifest/);
    expect(serializeError(error)).toMatchObject({ name: 'ShardIntegrityError', unrecoverable: true });
  });

  it('while a storage failure that may pass is still retried', () => {
    const error = new StorageError('GetObject datasets/fm/manifest.json failed: socket hang up');
    expect(serializeError(error).unrecoverable).toBe(false);
    expect(serializeError(new Error('ECONNRESET')).unrecoverable).toBe(false);
  });
});
