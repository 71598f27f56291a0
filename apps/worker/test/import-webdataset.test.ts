import { DatasetSourceError, loadSplit, packTar, readManifest } from '@dinoq/data';
import sharp from 'sharp';
import { importDataset } from '../src/compute/handlers/import-dataset';
import { serializeError } from '../src/compute/protocol';
import { startComputeFixture, type ComputeFixture } from './compute-fixture';

/* The queued `webdataset` import: tars under an S3 prefix of the real embedded server, streamed. */

const png = (rgb: [number, number, number]) =>
  sharp({ create: { width: 4, height: 4, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
const cls = (label: number) => Buffer.from(String(label));

describe('import job of a webdataset prefix', () => {
  let fixture: ComputeFixture;

  beforeAll(async () => {
    fixture = await startComputeFixture();
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('imports every .tar under the prefix in key order and reports the skipped samples', async () => {
    const { store } = fixture.ctx;
    await store.putBytes(
      'uploads/wds/shard-0.tar',
      await packTar([
        { name: 'a.png', body: await png([250, 0, 0]) },
        { name: 'a.cls', body: cls(1) },
        { name: 'b.cls', body: cls(0) },
        { name: 'b.png', body: await png([0, 250, 0]) },
        { name: 'c.png', body: await png([0, 0, 250]) },
      ]),
    );
    await store.putBytes(
      'uploads/wds/shard-1.tar',
      await packTar([
        { name: 'd.png', body: await png([9, 9, 9]) },
        { name: 'd.cls', body: cls(1) },
      ]),
    );
    await store.putBytes('uploads/wds/README.txt', Buffer.from('not a tar'));
    // A sibling prefix that shares the first characters is not part of the import.
    await store.putBytes(
      'uploads/wds2/other.tar',
      await packTar([{ name: 'z.png', body: await png([1, 1, 1]) }]),
    );

    const job = { datasetName: 'wds', source: { kind: 'webdataset' as const, prefix: 'uploads/wds' } };
    const result = await importDataset(fixture.ctx, fixture.scope('import', job), job);
    expect(result).toEqual({
      datasetName: 'wds',
      kind: 'webdataset',
      splits: { train: 3 },
      classes: 2,
      skipped: 1,
    });
    expect(fixture.logs).toContain('import wds: skipped 1 files');

    const manifest = await readManifest(store, 'wds');
    expect(manifest.classes).toEqual(['0', '1']);
    const data = await loadSplit(store, manifest, 'train');
    expect(Array.from(data.labels)).toEqual([1, 0, 1]);
    expect(Array.from(data.images.subarray(0, 3))).toEqual([250, 0, 0]);
    expect(Array.from(data.images.subarray(2 * 48, 2 * 48 + 3))).toEqual([9, 9, 9]);
  });

  it('fails for good when the prefix holds no .tar objects', async () => {
    await fixture.ctx.store.putBytes('uploads/flat-images/a.png', await png([1, 2, 3]));
    const job = {
      datasetName: 'notars',
      source: { kind: 'webdataset' as const, prefix: 'uploads/flat-images' },
    };
    const error = await importDataset(fixture.ctx, fixture.scope('import', job), job).then(
      () => new Error('expected a failure'),
      (failure: Error) => failure,
    );
    expect(error).toBeInstanceOf(DatasetSourceError);
    expect(error.message).toBe('import notars: no .tar objects under s3 prefix "uploads/flat-images/"');
    expect(serializeError(error)).toMatchObject({ name: 'DatasetSourceError', unrecoverable: true });
  });
});
