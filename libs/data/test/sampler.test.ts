import { batchIndices, epochOfStep, epochPermutation, itersPerEpoch } from '../src/sampler';

describe('seeded sampler', () => {
  it('permutes 0..n-1', () => {
    const perm = epochPermutation(1000, 5, 3);
    expect(Array.from(perm).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(Array.from(perm.subarray(0, 20))).not.toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('is a pure function of (n, seed, epoch)', () => {
    expect(epochPermutation(300, 1, 4)).toEqual(epochPermutation(300, 1, 4));
    expect(epochPermutation(300, 1, 4)).not.toEqual(epochPermutation(300, 1, 5));
    expect(epochPermutation(300, 1, 4)).not.toEqual(epochPermutation(300, 2, 4));
  });

  it('drops the incomplete last batch and moves to the next epoch', () => {
    const n = 10;
    const B = 3;
    expect(itersPerEpoch(n, B)).toBe(3);
    const epoch0 = [0, 1, 2].map((s) => batchIndices(n, B, 9, s));
    const perm0 = Array.from(epochPermutation(n, 9, 0));
    expect(epoch0.flat()).toEqual(perm0.slice(0, 9)); // perm0[9] is never used in epoch 0
    expect(new Set(epoch0.flat()).size).toBe(9);
    expect(epochOfStep(n, B, 3)).toBe(1);
    expect(batchIndices(n, B, 9, 3)).toEqual(Array.from(epochPermutation(n, 9, 1)).slice(0, 3));
    expect(batchIndices(n, B, 9, 8)).toEqual(Array.from(epochPermutation(n, 9, 2)).slice(6, 9));
  });

  it('replays the same batch for the same step, in any order of calls', () => {
    const later = batchIndices(60000, 64, 0, 12345);
    batchIndices(60000, 64, 0, 1);
    expect(batchIndices(60000, 64, 0, 12345)).toEqual(later);
    expect(later).toHaveLength(64);
  });

  it('rejects datasets smaller than a batch and bad steps', () => {
    expect(() => batchIndices(5, 8, 0, 0)).toThrow('dataset of 5 images is smaller than one batch of 8');
    expect(() => batchIndices(50, 8, 0, -1)).toThrow('step must be a non-negative integer');
  });
});
