import { parseRunConfig } from '@dinoq/config';
import { uniformImages } from '../src/images';
import { batchIndices } from '../src/sampler';
import { trainingBatch } from '../src/training-batches';

describe('training batches', () => {
  const cfg = parseRunConfig({
    model: { patchSize: 4 },
    augment: { globalCropSize: 8, localCropSize: 4, localCropsNumber: 2 },
  }).augment;
  const data = uniformImages({
    images: Uint8Array.from({ length: 20 * 36 }, (_, i) => (i * 7) & 0xff),
    count: 20,
    height: 6,
    width: 6,
    channels: 1,
  });

  it('uses the sampler for the step and its epoch for augmentation', async () => {
    const b = await trainingBatch(data, cfg, { seed: 4, batchSize: 8 }, 5);
    expect(b).toMatchObject({ step: 5, epoch: 2, batch: 8, sizes: [8, 8, 4, 4] });
    expect(b.indices).toEqual(batchIndices(20, 8, 4, 5));
  });
});
