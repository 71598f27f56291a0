import { cachedFeatures, decodeFeatures, encodeFeatures, type FeatureBlobStore } from '../src/feature-cache';
import type { FeatureSet } from '../src/knn';

class MemoryStore implements FeatureBlobStore {
  readonly blobs = new Map<string, Uint8Array>();
  gets = 0;
  puts = 0;
  async get(key: string): Promise<Uint8Array> {
    this.gets++;
    const b = this.blobs.get(key);
    if (!b) throw Object.assign(new Error(`no ${key}`), { code: 'BLOB_NOT_FOUND' });
    return b;
  }
  async put(key: string, bytes: Uint8Array): Promise<void> {
    this.puts++;
    this.blobs.set(key, bytes);
  }
}

const set: FeatureSet = {
  features: Float32Array.from([1.5, -2, Number.MAX_VALUE, -0, 1e-30, 3]),
  labels: Int32Array.from([7, -1]),
  count: 2,
  dim: 3,
};

describe('feature blobs', () => {
  it('round-trip features, labels and meta bit for bit', () => {
    const bytes = encodeFeatures(set, { runId: 'r1', step: 500, limit: null });
    const { set: back, meta } = decodeFeatures(bytes);
    expect(back.count).toBe(2);
    expect(back.dim).toBe(3);
    expect(Array.from(new Uint32Array(back.features.buffer, back.features.byteOffset, 6))).toEqual(
      Array.from(new Uint32Array(set.features.buffer)),
    );
    expect(Array.from(back.labels)).toEqual([7, -1]);
    expect(meta).toEqual({ runId: 'r1', step: 500, limit: null });
    // The data starts on a 4-byte boundary.
    expect((bytes.length - 4 * 2 * 4) % 4).toBe(0);
    // Decoding works from any offset inside a larger buffer.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expect(Array.from(decodeFeatures(shifted.subarray(3)).set.features)).toEqual(Array.from(set.features));
  });

  it('decodes a Node Buffer that views a larger pool', () => {
    const bytes = encodeFeatures(set);
    const pool = new ArrayBuffer(bytes.length + 64);
    new Uint8Array(pool).fill(0xee);
    const file = Buffer.from(pool, 16, bytes.length);
    file.set(bytes);
    const { set: back } = decodeFeatures(file);
    expect(Array.from(back.features)).toEqual(Array.from(set.features));
    expect(Array.from(back.labels)).toEqual([7, -1]);
    expect(back.features.buffer).not.toBe(pool);
  });

  it('rejects foreign or truncated bytes with the source named', () => {
    const bytes = encodeFeatures(set);
    expect(() => decodeFeatures(bytes.subarray(0, bytes.length - 1), 'k1')).toThrow(/k1.*bytes, expected/);
    expect(() => decodeFeatures(Uint8Array.from([1, 2, 3]), 'k2')).toThrow(/k2.*magic/);
    expect(() => encodeFeatures({ ...set, count: 3 })).toThrow(/6 floats for 3×3/);
  });
});

describe('cachedFeatures', () => {
  it('computes once, then reads back while the meta matches', async () => {
    const store = new MemoryStore();
    let computed = 0;
    const compute = async () => {
      computed++;
      return set;
    };
    const first = await cachedFeatures(store, 'runs/r/features/1/test.bin', compute, { limit: 100 });
    expect(first.hit).toBe(false);
    const second = await cachedFeatures(store, 'runs/r/features/1/test.bin', compute, { limit: 100 });
    expect(second.hit).toBe(true);
    expect(Array.from(second.set.features)).toEqual(Array.from(set.features));
    expect(computed).toBe(1);
    // Another limit recomputes and replaces the blob.
    const third = await cachedFeatures(store, 'runs/r/features/1/test.bin', compute, { limit: 200 });
    expect(third.hit).toBe(false);
    expect(computed).toBe(2);
    expect(decodeFeatures(store.blobs.get('runs/r/features/1/test.bin')!).meta).toEqual({ limit: 200 });
  });

  it('recomputes over a corrupt blob and passes other store errors through', async () => {
    const store = new MemoryStore();
    store.blobs.set('k', Uint8Array.from([9, 9, 9]));
    const res = await cachedFeatures(store, 'k', async () => set);
    expect(res.hit).toBe(false);
    expect(decodeFeatures(store.blobs.get('k')!).set.count).toBe(2);
    const broken: FeatureBlobStore = {
      get: async () => {
        throw new Error('connection reset');
      },
      put: async () => {},
    };
    await expect(cachedFeatures(broken, 'k', async () => set)).rejects.toThrow(/connection reset/);
  });
});
