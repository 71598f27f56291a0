import {
  DEFAULT_SHUFFLE_WINDOW,
  defaultShuffleWindow,
  StreamingSampleOrder,
  streamingBatchIndices,
} from '../src/streaming/sample-order';

// Uneven shards, one empty, so windows straddle shard boundaries.
const shardCounts = [37, 50, 13, 64, 0, 41, 29, 66];
const n = shardCounts.reduce((a, b) => a + b, 0); // 300
const windowSize = 40;
const batchSize = 16;
const iters = Math.floor(n / batchSize); // 18, tail of 12 dropped

const orderOf = (seed: number, w = windowSize) =>
  new StreamingSampleOrder({ shardCounts, seed, windowSize: w });

/** The epoch's samples laid out shard by shard in the shuffled shard order, before the window shuffle. */
function shardSequence(order: StreamingSampleOrder, epoch: number): number[] {
  return Array.from(order.shardPermutation(epoch)).flatMap((s) =>
    Array.from({ length: shardCounts[s] }, (_, i) => order.shardStart(s) + i),
  );
}

describe('streaming sample order', () => {
  it('is a pure function of (seed, epoch, shards): fresh orders agree step by step', () => {
    const a = orderOf(7);
    const b = orderOf(7);
    for (let step = 0; step < 3 * iters; step++)
      expect(streamingBatchIndices(a, batchSize, step)).toEqual(b.batchIndices(batchSize, step));
  });

  it('covers every sample exactly once per epoch apart from the dropped tail', () => {
    const order = orderOf(3);
    for (const epoch of [0, 1, 5]) {
      const seen = new Set<number>();
      for (let i = 0; i < iters; i++)
        for (const index of order.batchIndices(batchSize, epoch * iters + i)) {
          expect(index).toBeGreaterThanOrEqual(0);
          expect(index).toBeLessThan(n);
          seen.add(index);
        }
      expect(seen.size).toBe(iters * batchSize);
      const full = order.epochOrder(epoch);
      expect(new Set(full).size).toBe(n);
      // The samples left out are exactly the epoch's last positions.
      const tail = Array.from(full.subarray(iters * batchSize));
      expect(tail.every((i) => !seen.has(i))).toBe(true);
    }
  });

  it('differs between epochs and between seeds', () => {
    const a = orderOf(1);
    expect(a.batchIndices(batchSize, 0)).not.toEqual(a.batchIndices(batchSize, iters));
    expect(Array.from(a.shardPermutation(0))).not.toEqual(Array.from(a.shardPermutation(1)));
    expect(a.batchIndices(batchSize, 0)).not.toEqual(orderOf(2).batchIndices(batchSize, 0));
  });

  it('gives a resumed run the batches of an uninterrupted one', () => {
    const whole = orderOf(9);
    const pass = Array.from({ length: 3 * iters }, (_, step) => whole.batchIndices(batchSize, step));
    for (const resumeAt of [5, iters, 2 * iters + 3]) {
      const resumed = orderOf(9);
      for (let step = resumeAt; step < 3 * iters; step++)
        expect(resumed.batchIndices(batchSize, step)).toEqual(pass[step]);
    }
  });

  it('moves a sample only within its window of the shard-shuffled sequence', () => {
    const order = orderOf(4);
    for (const epoch of [0, 2]) {
      const sequence = shardSequence(order, epoch);
      const shuffled = order.epochOrder(epoch);
      let moved = 0;
      for (let from = 0; from < n; from += windowSize) {
        const to = Math.min(n, from + windowSize);
        const before = sequence.slice(from, to);
        const after = Array.from(shuffled.subarray(from, to));
        expect([...after].sort((x, y) => x - y)).toEqual([...before].sort((x, y) => x - y));
        moved += after.filter((v, i) => v !== before[i]).length;
      }
      expect(moved).toBeGreaterThan(n / 2); // the windows really are shuffled
    }
  });

  it('with a window of one sample keeps each shard contiguous, in the shuffled shard order', () => {
    const order = orderOf(5, 1);
    expect(Array.from(order.epochOrder(0))).toEqual(shardSequence(order, 0));
  });

  it('lists the shards a step range reads, each once, in the order first needed', () => {
    const order = orderOf(6);
    const from = iters - 2; // crosses into epoch 1
    const to = iters + 3;
    const expected: number[] = [];
    for (let step = from; step < to; step++)
      for (const index of order.batchIndices(batchSize, step)) {
        const shard = order.shardOfSample(index);
        if (!expected.includes(shard)) expected.push(shard);
      }
    expect(order.shardsForSteps(batchSize, from, to)).toEqual(expected);
    // One batch reads from the few shards overlapping its window, not from all of them.
    expect(order.shardsForSteps(batchSize, 0, 1).length).toBeLessThan(shardCounts.length - 1);
  });

  it('maps global indices to shards in manifest order', () => {
    const order = orderOf(0);
    expect([0, 36, 37, 86, 87, 99, 100, 163, 164, 204, 205, 299].map((i) => order.shardOfSample(i))).toEqual([
      0, 0, 1, 1, 2, 2, 3, 3, 5, 5, 6, 7,
    ]);
    expect(() => order.shardOfSample(n)).toThrow(/outside the split/);
  });

  it('defaults to a window of 8192 samples that spans at least four shards', () => {
    expect(DEFAULT_SHUFFLE_WINDOW).toBe(8192);
    expect(new StreamingSampleOrder({ shardCounts, seed: 0 }).windowSize).toBe(8192);
    expect(defaultShuffleWindow(new Array(128).fill(1000))).toBe(8192);
    expect(defaultShuffleWindow([10_000, 10_000, 3_000])).toBe(40_000);
  });

  it('rejects a split smaller than one batch, bad steps and bad windows', () => {
    expect(() => new StreamingSampleOrder({ shardCounts: [3, 4], seed: 0 }).batchIndices(8, 0)).toThrow(
      /smaller than one batch/,
    );
    expect(() => orderOf(0).batchIndices(batchSize, -1)).toThrow(/step must be/);
    expect(() => orderOf(0, 0)).toThrow(/shuffle window/);
  });
});
