import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { decodePng, evalTransform, uniformImages } from '@dinoq/data';
import { disposeParams, initDinoParams, type Params } from '@dinoq/dino';
import { exportAttentionMaps } from '../src/attention-export';
import { clsAttention, imageAttention } from '../src/attention';
import { maskArea } from '../src/masks';
import { tinyConfig } from './tiny-vit';

let params: Params;

beforeAll(async () => {
  await tf.setBackend('cpu');
  params = initDinoParams(tinyConfig, 5);
});

afterAll(() => disposeParams(params));

const gray = {
  pixels: Uint8Array.from({ length: 28 * 28 }, (_, i) => (i * 13) % 256),
  width: 28,
  height: 28,
  channels: 1,
  name: 'shirt.png',
};
const rgb = {
  pixels: Uint8Array.from({ length: 20 * 30 * 3 }, (_, i) => (i * 29) % 256),
  width: 30,
  height: 20,
  channels: 3,
};

describe('exportAttentionMaps', () => {
  it('writes every PNG under flat names, at a viewable size, with an index', async () => {
    const before = tf.memory().numTensors;
    const { files, index } = await exportAttentionMaps(params, tinyConfig, [gray, rgb], { batchSize: 1 });
    expect(tf.memory().numTensors).toBe(before);
    expect(index).toMatchObject({ threshold: 0.6, patchSize: 4, heads: 2, imageSize: 16, scale: 8 });
    const perImage = (i: number) => [
      `img${i}-input.png`,
      `img${i}-head0.png`,
      `img${i}-head1.png`,
      `img${i}-mean.png`,
      `img${i}-mask-head0.png`,
      `img${i}-mask-head1.png`,
      `img${i}-mask-mean.png`,
      `img${i}-overlay-head0.png`,
      `img${i}-overlay-head1.png`,
      `img${i}-overlay.png`,
    ];
    expect(Object.keys(files).sort()).toEqual([...perImage(0), ...perImage(1)].sort());
    for (const [name, bytes] of Object.entries(files)) {
      const png = decodePng(bytes);
      expect([name, png.width, png.height]).toEqual([name, 128, 128]);
      expect([name, png.channels]).toEqual([name, name.includes('-mask-') ? 1 : 3]);
    }
    expect(index.images.map((e) => e.name)).toEqual(['shirt.png', 'img1']);
    expect(index.images[1].files.headMasks).toEqual(['img1-mask-head0.png', 'img1-mask-head1.png']);
    for (const name of Object.values(index.images[0].files).flat()) expect(files[name]).toBeDefined();
    // The index survives a JSON round trip unchanged.
    expect(JSON.parse(JSON.stringify(index))).toEqual(index);
  });

  it('matches the maps computed directly on the evalTransform input', async () => {
    const { files, index } = await exportAttentionMaps(params, tinyConfig, [gray], {
      scale: 1,
      threshold: 0.5,
    });
    const source = uniformImages({ images: gray.pixels, count: 1, width: 28, height: 28, channels: 1 });
    const x = tf.tensor4d(
      evalTransform(source, [0], 16, tinyConfig.augment.mean, tinyConfig.augment.std),
      [1, 16, 16, 3],
    );
    const direct = imageAttention(clsAttention(params, tinyConfig, x), 0, 0.5);
    x.dispose();
    const mask = decodePng(files['img0-mask-head1.png']);
    expect(mask.width).toBe(16);
    expect(Array.from(mask.data, (v) => (v ? 1 : 0))).toEqual(Array.from(direct.headMasks[1]));
    expect(index.images[0].maskArea.mean).toBeCloseTo(maskArea(direct.meanMask), 9);
    expect(index.images[0].maskArea.heads).toEqual(direct.headMasks.map(maskArea));
    // The input PNG is the de-normalised model input: gray stays gray.
    const input = decodePng(files['img0-input.png']).data;
    for (let i = 0; i < input.length; i += 3) {
      expect(Math.abs(input[i] - input[i + 1])).toBeLessThanOrEqual(1);
      expect(Math.abs(input[i] - input[i + 2])).toBeLessThanOrEqual(1);
    }
  });

  it('names the bad image', async () => {
    await expect(
      exportAttentionMaps(params, tinyConfig, [gray, { ...rgb, channels: 4, name: 'x.png' }]),
    ).rejects.toThrow(/image 1 \("x.png"\): 4 channels/);
    await expect(
      exportAttentionMaps(params, tinyConfig, [{ ...gray, pixels: new Uint8Array(10) }]),
    ).rejects.toThrow(/image 0.*10 bytes/);
  });
});
