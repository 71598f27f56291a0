import { createHash } from 'node:crypto';
import { resolveRunConfig } from '@dinoq/config';
import { augmentBatch, type ImageSource } from '../src/augment/multi-crop';

/**
 * Pins the exact bytes of multi-crop batches so that speed work on the augmentation kernels
 * cannot change any output for the same seed. The hashes were recorded from the straightforward
 * implementation; a mismatch means the output changed, not that the hash needs updating.
 */

/** Deterministic 500 × 375 images with gradients, edges and noise, so every op has work to do. */
function texturedImages(count: number, channels: 1 | 3, height = 375, width = 500): ImageSource {
  const images = new Uint8Array(count * height * width * channels);
  let state = 12345;
  for (let i = 0; i < count; i++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < channels; c++) {
          state = (state * 1103515245 + 12345) >>> 0;
          const gradient = (x * (c + 1) + y * (3 - c) + i * 40) % 256;
          const edge = ((x >> 5) + (y >> 5)) % 2 === 0 ? 60 : 0;
          images[((i * height + y) * width + x) * channels + c] = (gradient + edge + (state >>> 28)) & 0xff;
        }
  return { images, count, height, width, channels };
}

function viewHashes(views: Float32Array[]): string[] {
  return views.map((v) =>
    createHash('sha256')
      .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
      .digest('hex')
      .slice(0, 16),
  );
}

describe('multi-crop output is pinned for a seed', () => {
  it('at the paper sizes (2 × 224 + 8 × 96) on colour images', async () => {
    const cfg = resolveRunConfig('vit_small_p16').augment;
    const out = await augmentBatch(texturedImages(5, 3), [4, 0, 3, 1, 2], cfg, { seed: 7, epoch: 2 });
    expect(viewHashes(out.views)).toEqual(PAPER_RGB);
  });

  it("at fmnist-tiny's sizes on gray images", async () => {
    const cfg = resolveRunConfig('fmnist-tiny').augment;
    const out = await augmentBatch(texturedImages(6, 1, 28, 28), [5, 0, 3, 1, 4, 2], cfg, {
      seed: 3,
      epoch: 0,
    });
    expect(viewHashes(out.views)).toEqual(FMNIST_GRAY);
  });
});

const PAPER_RGB = [
  'e43652aabbcbf779',
  'c8553c74884d7437',
  '7d76ad3804521eb5',
  '05f0c770638aa893',
  '57c02e158c6ff113',
  '6b7960f4dbeea4e6',
  '82ec1a8ee2b1e4cb',
  '9a27f103cdd9e97e',
  'e2e12ede75c48303',
  '797f98705994823c',
];
const FMNIST_GRAY = [
  'fd5fa0776569fcbd',
  '478bf229f867401e',
  '0b1c3b91707c33cc',
  'b7b1a33e1eb5aabe',
  'e617981566a3e94f',
  'cb72b5bd7ad7a673',
];
