import { parseRunConfig } from '@dinoq/config';
import { Prefetcher } from '../src/prefetcher';
import { batchIndices } from '../src/sampler';
import { trainingBatch, trainingBatchPrefetcher } from '../src/training-batches';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe('Prefetcher', () => {
  it('prepares the next step while the caller works, so the second get does not wait', async () => {
    const started: number[] = [];
    const p = new Prefetcher(async (step) => {
      started.push(step);
      await sleep(40);
      return step * 10;
    });
    expect(await p.get(0)).toBe(0);
    const firstWait = p.stats.waitMs;
    expect(firstWait).toBeGreaterThanOrEqual(30);
    expect(started).toEqual([0, 1]);
    await sleep(80); // the "training step"
    expect(await p.get(1)).toBe(10);
    expect(p.stats.waitMs - firstWait).toBeLessThan(20);
    expect(p.stats).toMatchObject({ batches: 2, prefetched: 1 });
    expect(started).toEqual([0, 1, 2]);
  });

  it('produces a step directly after a jump and drops stale prefetches', async () => {
    const started: number[] = [];
    const p = new Prefetcher(
      async (step) => {
        started.push(step);
        return step;
      },
      { depth: 2 },
    );
    await p.get(0);
    expect(started).toEqual([0, 1, 2]);
    expect(await p.get(10)).toBe(10);
    expect(started).toEqual([0, 1, 2, 10, 11, 12]);
    expect(p.stats.prefetched).toBe(0);
  });

  it('surfaces a failed batch when that step is asked for', async () => {
    const p = new Prefetcher(async (step) => {
      if (step === 1) throw new Error('shard unavailable');
      return step;
    });
    await p.get(0);
    await expect(p.get(1)).rejects.toThrow('shard unavailable');
  });
});

describe('training batches', () => {
  const cfg = parseRunConfig({
    model: { patchSize: 4 },
    augment: { globalCropSize: 8, localCropSize: 4, localCropsNumber: 2 },
  }).augment;
  const data = {
    images: Uint8Array.from({ length: 20 * 36 }, (_, i) => (i * 7) & 0xff),
    count: 20,
    height: 6,
    width: 6,
    channels: 1 as const,
  };

  it('uses the sampler for the step and its epoch for augmentation', async () => {
    const b = await trainingBatch(data, cfg, { seed: 4, batchSize: 8 }, 5);
    expect(b).toMatchObject({ step: 5, epoch: 2, batch: 8, sizes: [8, 8, 4, 4] });
    expect(b.indices).toEqual(batchIndices(20, 8, 4, 5));
  });

  it('gives the prefetched batch bit for bit what a direct call gives', async () => {
    const prefetcher = trainingBatchPrefetcher(data, cfg, { seed: 4, batchSize: 8 });
    await prefetcher.get(2);
    const viaPrefetch = await prefetcher.get(3);
    const direct = await trainingBatch(data, cfg, { seed: 4, batchSize: 8 }, 3);
    expect(viaPrefetch.indices).toEqual(direct.indices);
    viaPrefetch.views.forEach((v, i) =>
      expect(Buffer.from(v.buffer).equals(Buffer.from(direct.views[i].buffer))).toBe(true),
    );
    expect(prefetcher.stats.prefetched).toBe(1);
  });
});
