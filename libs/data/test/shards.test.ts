import { FsBlobStore } from '../src/fs-blob-store';
import { loadSplit } from '../src/load-split';
import {
  fixedImageSize,
  MANIFEST_VERSION,
  manifestChannels,
  ManifestError,
  parseManifest,
  readManifest,
  shardKey,
  splitDecodedBytes,
  writeManifest,
  type DatasetManifest,
} from '../src/manifest';
import { encodePng } from '../src/png';
import { ShardIntegrityError, fetchShard, readShardSamples, readSplitSamples } from '../src/shard-reader';
import { ShardWriter, packTar } from '../src/shard-writer';
import { createDecodeCounter, decodeSample } from '../src/decode';
import { useTempDir } from './helpers';

const W = 4;
const H = 3;
const image = (v: number): Uint8Array => encodePng(new Uint8Array(W * H).fill(v), W, H, 1);

async function writeDataset(
  store: FsBlobStore,
  name: string,
  samples: { image: Uint8Array; label: number }[],
  shardSize: number,
) {
  const writer = new ShardWriter(store, { dataset: name, split: 'train', shardSize });
  for (const [i, s] of samples.entries()) await writer.add({ key: `s${i}`, ...s });
  const manifest: DatasetManifest = {
    name,
    version: MANIFEST_VERSION,
    imageSize: { width: W, height: H, channels: 1 },
    classes: ['a', 'b', 'c'],
    splits: { train: await writer.finish() },
    createdAt: '2024-01-01T00:00:00.000Z',
  };
  await writeManifest(store, manifest);
  return manifest;
}

describe('tar shards', () => {
  const dir = useTempDir('shards');

  it('groups members by key and keeps masks and missing labels', async () => {
    const tarBytes = await packTar([
      { name: 'a.png', body: image(10) },
      { name: 'a.cls', body: Buffer.from('2') },
      { name: 'a.mask.png', body: image(255) },
      { name: 'b.png', body: image(20) },
      { name: 'b.json', body: Buffer.from('{}') },
      { name: 'c.cls', body: Buffer.from(' 1\n') },
    ]);
    const samples = [];
    for await (const s of readShardSamples(tarBytes, 'x.tar')) samples.push(s);
    expect(samples.map((s) => [s.key, s.label, s.image !== undefined, s.mask !== undefined])).toEqual([
      ['a', 2, true, true],
      ['b', undefined, true, false],
      ['c', 1, false, false],
    ]);
    const counter = createDecodeCounter();
    const a = await decodeSample(samples[0], { channels: 1 }, counter);
    expect(a?.label).toBe(2);
    expect(Array.from(a?.mask ?? [])).toEqual(new Array(W * H).fill(255));
    expect((await decodeSample(samples[1], { channels: 1 }, counter))?.label).toBe(-1);
    expect(await decodeSample(samples[2], { channels: 1 }, counter)).toBeUndefined();
    expect(counter).toEqual({
      decoded: 2,
      skipped: 1,
      skippedKeys: ['c'],
      skippedReasons: ['no image member'],
    });
  });

  it('rejects a .cls member that is not an integer, naming shard and key', async () => {
    const tarBytes = await packTar([
      { name: 'k1.png', body: image(1) },
      { name: 'k1.cls', body: Buffer.from('cat') },
    ]);
    const read = async () => {
      for await (const _ of readShardSamples(tarBytes, 'ds/train-000003.tar'));
    };
    await expect(read()).rejects.toThrow(
      'shard ds/train-000003.tar: sample k1: .cls member "cat" is not an integer',
    );
  });

  it('skips and counts a corrupt PNG member instead of failing', async () => {
    const store = new FsBlobStore(dir());
    const corrupt = Buffer.from(image(50));
    corrupt.fill(0x41, 40, 60);
    const manifest = await writeDataset(
      store,
      'with-corrupt',
      [
        { image: image(10), label: 0 },
        { image: corrupt, label: 1 },
        { image: Buffer.from('not an image at all'), label: 1 },
        { image: image(40), label: 2 },
        { image: encodePng(new Uint8Array(5 * 5).fill(9), 5, 5, 1), label: 2 },
      ],
      2,
    );
    const data = await loadSplit(store, manifest, 'train');
    expect(data.count).toBe(2);
    expect(data.skipped).toBe(3);
    expect(data.skippedKeys).toEqual(['s1', 's2', 's4']);
    expect(Array.from(data.labels)).toEqual([0, 2]);
    expect(Array.from(data.images.subarray(0, W * H))).toEqual(new Array(W * H).fill(10));
    expect(Array.from(data.images.subarray(W * H))).toEqual(new Array(W * H).fill(40));
  });

  it('fails on a shard whose sha256 does not match the manifest, naming the shard', async () => {
    const store = new FsBlobStore(dir());
    const manifest = await writeDataset(
      store,
      'tampered',
      [0, 1, 2].map((v) => ({ image: image(v), label: v })),
      2,
    );
    const key = shardKey('tampered', 'train-000001.tar');
    const bytes = Buffer.from(await store.get(key));
    bytes[600] ^= 1;
    await store.put(key, bytes);
    await expect(fetchShard(store, manifest, manifest.splits.train.shards[0])).resolves.toBeInstanceOf(
      Uint8Array,
    );
    await expect(fetchShard(store, manifest, manifest.splits.train.shards[1])).rejects.toThrow(
      ShardIntegrityError,
    );
    await expect(loadSplit(store, manifest, 'train')).rejects.toThrow(
      /^shard datasets\/tampered\/shards\/train-000001\.tar: sha256 [0-9a-f]{64} does not match/,
    );
  });

  it('stops reading shards once the limit is reached', async () => {
    const store = new FsBlobStore(dir());
    const manifest = await writeDataset(
      store,
      'limited',
      [0, 1, 2, 3, 4].map((v) => ({ image: image(v), label: 0 })),
      2,
    );
    await store.put(shardKey('limited', 'train-000002.tar'), Buffer.from('gone'));
    const keys = [];
    for await (const s of readSplitSamples(store, manifest, 'train', { limit: 4 })) keys.push(s.key);
    expect(keys).toEqual(['s0', 's1', 's2', 's3']);
  });
});

describe('manifest', () => {
  const dir = useTempDir('manifest');
  const valid = {
    name: 'ds',
    version: 1,
    imageSize: { width: 28, height: 28, channels: 1 },
    classes: ['x'],
    splits: {
      train: {
        count: 3,
        shards: [{ file: 'train-000000.tar', count: 3, sha256: 'a'.repeat(64), bytes: 100 }],
      },
    },
    createdAt: '2024-05-01T10:00:00.000Z',
  };

  it('accepts a valid manifest', () => {
    expect(parseManifest(valid)).toEqual(valid);
  });

  it('names the offending field', () => {
    const bad = structuredClone(valid) as Record<string, unknown> & typeof valid;
    bad.splits.train.shards[0].sha256 = 'xyz';
    bad.imageSize.channels = 2;
    let err: unknown;
    try {
      parseManifest(bad, 'datasets/ds/manifest.json');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ManifestError);
    const msg = (err as Error).message;
    expect(msg).toContain('datasets/ds/manifest.json');
    expect(msg).toContain('splits.train.shards.0.sha256: must be 64 lowercase hex digits');
    expect(msg).toContain('imageSize.channels');
  });

  it('reads datasets whose images keep their own sizes, naming the missing fields', () => {
    const { imageSize, ...rest } = structuredClone(valid);
    const own = {
      ...rest,
      channels: 3,
      splits: { train: { ...rest.splits.train, decoded: { bytes: 3 * 40 * 30 * 3, maxSide: 40 } } },
    };
    const manifest = parseManifest(own);
    expect(manifest).toEqual(own);
    expect(manifestChannels(manifest)).toBe(3);
    expect(splitDecodedBytes(manifest, 'train')).toBe(10800);
    expect(manifestChannels(parseManifest(valid))).toBe(1);
    expect(splitDecodedBytes(parseManifest(valid), 'train')).toBe(3 * 28 * 28);
    expect(() => fixedImageSize(manifest, 'loading masks')).toThrow(
      `loading masks: dataset "ds" keeps each image's own size (no imageSize)`,
    );

    expect(() => parseManifest(rest)).toThrow(
      'imageSize: is required unless channels is given (images that keep their own sizes)',
    );
    expect(() => parseManifest({ ...own, imageSize })).toThrow(
      'channels: must be absent when imageSize is given',
    );
    expect(() => parseManifest({ ...own, channels: 2 })).toThrow('channels:');
    expect(() => parseManifest({ ...rest, channels: 3 })).toThrow(
      'splits.train.decoded: is required when images keep their own sizes',
    );
    expect(() => parseManifest({ ...valid, splits: own.splits })).toThrow(
      'splits.train.decoded: must be absent when imageSize is given',
    );
  });

  it('requires dataset names that are valid storage key segments', async () => {
    expect(() => parseManifest({ ...valid, name: 'Bad.Name' })).toThrow(
      /name: must be 1-64 lowercase letters/,
    );
    await expect(
      writeManifest(new FsBlobStore(dir()), { ...valid, name: '../x' } as DatasetManifest),
    ).rejects.toThrow('invalid dataset manifest for dataset "../x": name:');
  });

  it('checks that shard counts add up to the split count', () => {
    const bad = structuredClone(valid);
    bad.splits.train.count = 4;
    expect(() => parseManifest(bad)).toThrow('splits.train.count: is 4 but the shard counts sum to 3');
  });

  it('reports unparseable JSON and missing fields on read', async () => {
    const store = new FsBlobStore(dir());
    await store.put('datasets/broken/manifest.json', Buffer.from('{"name": '));
    await expect(readManifest(store, 'broken')).rejects.toThrow(
      'invalid dataset manifest datasets/broken/manifest.json: not valid JSON',
    );
    const { createdAt: _omitted, ...noDate } = valid;
    await store.put(
      'datasets/nodate/manifest.json',
      Buffer.from(JSON.stringify({ ...noDate, name: 'nodate' })),
    );
    await expect(readManifest(store, 'nodate')).rejects.toThrow('createdAt');
  });
});
