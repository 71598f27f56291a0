import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import sharp from 'sharp';
import {
  FsBlobStore,
  heldPass,
  loadSplit,
  manifestEvalCropFraction,
  MANIFEST_VERSION,
  packTar,
  sampleMembers,
  ShardCache,
  shardFileName,
  shardKey,
  splitSampleReader,
  StreamedSplitPass,
  writeManifest,
  type DatasetManifest,
  type ShardInfo,
} from '@dinoq/data';
import { disposeParams, initDinoParams, type Params } from '@dinoq/dino';
import { extractFeatures } from '../src/features';
import { extractProbeFeatures } from '../src/probe-features';
import { tinyConfig } from './tiny-vit';

/*
 * Features of a split streamed from its shards equal those of the same split held decoded in
 * memory, bit for bit: same images in the same batches, unusable ones left out by both.
 */

const SHARDS = [9, 9, 5];
const COUNT = SHARDS.reduce((a, b) => a + b, 0);
const CORRUPT = 11;

/** Sample i: a textured RGB photo of its own size, PNG or JPEG; sample CORRUPT is a cut-off JPEG. */
async function imageOf(i: number): Promise<{ bytes: Uint8Array; ext: 'png' | 'jpg'; decoded: number }> {
  const [width, height] = [12 + ((i * 7) % 19), 12 + ((i * 5) % 13)];
  const pixels = Buffer.alloc(width * height * 3);
  for (let k = 0; k < pixels.length; k++) pixels[k] = (k * 31 + i * 67 + ((k * i) % 13) * 9) & 0xff;
  const img = sharp(pixels, { raw: { width, height, channels: 3 } });
  const bytes = await (i % 2 ? img.jpeg() : img.png()).toBuffer();
  if (i === CORRUPT) return { bytes: bytes.subarray(0, bytes.length >> 1), ext: 'jpg', decoded: 0 };
  return { bytes, ext: i % 2 ? 'jpg' : 'png', decoded: pixels.length };
}

async function writeDataset(store: FsBlobStore): Promise<DatasetManifest> {
  const shards: ShardInfo[] = [];
  let index = 0;
  let decodedBytes = 0;
  for (const [s, size] of SHARDS.entries()) {
    const members = [];
    for (let k = 0; k < size; k++, index++) {
      const { bytes, ext, decoded } = await imageOf(index);
      decodedBytes += decoded;
      const key = `s${String(index).padStart(4, '0')}`;
      members.push(...sampleMembers({ key, image: bytes, imageExt: ext, label: index % 3 }));
    }
    const tar = await packTar(members);
    const file = shardFileName('test', s);
    await store.put(shardKey('photos', file), tar);
    shards.push({
      file,
      count: size,
      sha256: createHash('sha256').update(tar).digest('hex'),
      bytes: tar.length,
    });
  }
  const manifest: DatasetManifest = {
    name: 'photos',
    version: MANIFEST_VERSION,
    channels: 3,
    classes: ['a', 'b', 'c'],
    splits: { test: { count: COUNT, shards, decoded: { bytes: decodedBytes, maxSide: 30 } } },
    createdAt: '2024-01-01T00:00:00.000Z',
  };
  await writeManifest(store, manifest);
  return manifest;
}

describe('streamed feature extraction', () => {
  let dir: string;
  let store: FsBlobStore;
  let manifest: DatasetManifest;
  let params: Params;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    dir = await mkdtemp(path.join(tmpdir(), 'dinoq-streamed-features-'));
    store = new FsBlobStore(path.join(dir, 'store'));
    manifest = await writeDataset(store);
    params = initDinoParams(tinyConfig, 4);
  });

  afterAll(async () => {
    disposeParams(params);
    await rm(dir, { recursive: true, force: true });
  });

  async function streamed(): Promise<StreamedSplitPass> {
    // Room for two shards: the pass must not need the whole split on disk either.
    const cache = await ShardCache.open({
      store,
      dataset: 'photos',
      dir: await mkdtemp(path.join(dir, 'cache-')),
      maxBytes: 2 * Math.max(...manifest.splits.test.shards.map((s) => s.bytes)),
    });
    const reader = splitSampleReader(manifest, 'test', cache);
    return new StreamedSplitPass({
      reader,
      cropFraction: manifestEvalCropFraction(manifest),
      prefetchBatches: 1,
    });
  }

  it('gives the features and labels of the split held in memory, the corrupt image left out by both', async () => {
    const held = await loadSplit(store, manifest, 'test');
    expect(held).toMatchObject({ count: COUNT - 1, skipped: 1 });
    const opts = { config: tinyConfig, batchSize: 4 };
    const pass = await streamed();
    const progress: number[] = [];
    const fromShards = await extractFeatures(params, pass, {
      ...opts,
      onProgress: (done, total) => progress.push(done, total),
    });
    const inMemory = await extractFeatures(params, held, opts);

    expect(fromShards).toMatchObject({ count: COUNT - 1, dim: 16 });
    expect(Buffer.from(fromShards.features.buffer).equals(Buffer.from(inMemory.features.buffer))).toBe(true);
    expect(Array.from(fromShards.labels)).toEqual(Array.from(inMemory.labels));
    expect(Array.from(fromShards.labels)).toEqual(
      Array.from({ length: COUNT }, (_, i) => i % 3).filter((_, i) => i !== CORRUPT),
    );
    expect(pass.skipped()).toMatchObject({ images: 1, shards: 0 });
    expect(pass.skipped().reasons[0]).toContain(`s00${CORRUPT}`);
    // Progress counts samples read, up to the whole split.
    expect(progress.slice(-2)).toEqual([COUNT, COUNT]);
  });

  it('gives the probe features of the split held in memory, for the first `limit` samples', async () => {
    const limit = 15;
    const held = await loadSplit(store, manifest, 'test', { limit });
    const opts = { config: tinyConfig, batchSize: 3, lastBlocks: 2, limit };
    const fromShards = await extractProbeFeatures(params, await streamed(), opts);
    const inMemory = await extractProbeFeatures(
      params,
      heldPass(held, manifestEvalCropFraction(manifest)),
      opts,
    );
    expect(fromShards).toMatchObject({ count: limit - 1, dim: 32 });
    expect(Buffer.from(fromShards.features.buffer).equals(Buffer.from(inMemory.features.buffer))).toBe(true);
    expect(Array.from(fromShards.labels)).toEqual(Array.from(inMemory.labels));
  });
});
