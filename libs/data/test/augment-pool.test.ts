import { parseRunConfig, type AugmentConfig } from '@dinoq/config';
import { augmentBatch } from '../src/augment/multi-crop';
import { uniformImages, type ImageSource } from '../src/images';
import { AugmentPool } from '../src/augment/augment-pool';
import { trainingBatch } from '../src/training-batches';

// The pool's threads start from the TypeScript sources (spawnModuleThread's loader).

const cfg: AugmentConfig = parseRunConfig({
  model: { patchSize: 4 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 4 },
}).augment;

/** Deterministic textured 14×12 RGB images. */
function rgbImages(count: number, height = 14, width = 12): ImageSource {
  const images = new Uint8Array(count * height * width * 3);
  for (let i = 0; i < images.length; i++) images[i] = (i * 53 + ((i * i) % 13) * 19) & 0xff;
  return uniformImages({ images, count, height, width, channels: 3 });
}

describe('AugmentPool', () => {
  const source = rgbImages(40);
  let pools: AugmentPool[] = [];
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  test.each([1, 3])(
    '%i thread(s) give bit-identical batches to augmentBatch on this thread',
    async (threads) => {
      const pool = AugmentPool.start(source, threads);
      pools.push(pool);
      expect(pool.threads).toBe(threads);
      const indices = [7, 3, 39, 0, 12, 12, 25, 30, 1, 18, 22];
      for (const epoch of [0, 4]) {
        const here = await augmentBatch(source, indices, cfg, { seed: 11, epoch });
        const there = await pool.augment(indices, cfg, { seed: 11, epoch });
        expect(there.batch).toBe(indices.length);
        expect(there.sizes).toEqual(here.sizes);
        expect(there.views).toHaveLength(here.views.length);
        there.views.forEach((view, v) =>
          expect(Buffer.from(view.buffer).equals(Buffer.from(here.views[v].buffer))).toBe(true),
        );
        expect(there.busyMs).toBeGreaterThan(0);
      }
    },
  );

  test('trainingBatch through a pool equals the batch made on this thread', async () => {
    const pool = AugmentPool.start(source, 2);
    pools.push(pool);
    const sampling = { seed: 3, batchSize: 8 };
    const here = await trainingBatch(source, cfg, sampling, 9);
    const there = await trainingBatch(source, cfg, { ...sampling, pool }, 9);
    expect(there.indices).toEqual(here.indices);
    expect(there.epoch).toBe(here.epoch);
    there.views.forEach((view, v) => expect(Array.from(view)).toEqual(Array.from(here.views[v])));
  });

  test('an index outside the dataset is refused by name, and the pool keeps working', async () => {
    const pool = AugmentPool.start(source, 2);
    pools.push(pool);
    await expect(pool.augment([1, 40], cfg, { seed: 1, epoch: 0 })).rejects.toThrow(
      /image index 40 is outside the dataset \(0\.\.39\)/,
    );
    const ok = await pool.augment([1, 2], cfg, { seed: 1, epoch: 0 });
    expect(ok.batch).toBe(2);
  });

  test('a closed pool rejects new work instead of hanging', async () => {
    const pool = AugmentPool.start(source, 1);
    await pool.close();
    await expect(pool.augment([0], cfg, { seed: 1, epoch: 0 })).rejects.toThrow(/was closed/);
    pools = pools.filter((p) => p !== pool);
  });

  test('the thread count must be a positive integer', () => {
    expect(() => AugmentPool.start(source, 0)).toThrow(/positive integer, got 0/);
  });
});
