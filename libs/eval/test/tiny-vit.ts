import { parseRunConfig, type RunConfig } from '@dinoq/config';
import { uniformImages, type DecodedSplit } from '@dinoq/data';
import seedrandom from 'seedrandom';

/** A ViT small enough for the cpu backend: 16-px inputs, 4×4 patches of 4 px, 2 heads. */
export const tinyConfig: RunConfig = parseRunConfig({
  model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 2, numHeads: 2, dropPathRate: 0 },
  head: { outDim: 32, hiddenDim: 24, bottleneckDim: 8, nlayers: 3 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
});

/** Random gray images with labels i mod classes. */
export function randomSplit(count: number, side: number, seed: string, channels: 1 | 3 = 1): DecodedSplit {
  const rng = seedrandom(seed);
  const images = Uint8Array.from({ length: count * side * side * channels }, () => Math.floor(rng() * 256));
  const labels = Int32Array.from({ length: count }, (_, i) => i % 3);
  return {
    ...uniformImages({ images, count, height: side, width: side, channels }),
    labels,
    skipped: 0,
    skippedKeys: [],
  };
}
