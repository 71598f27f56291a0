import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import seedrandom from 'seedrandom';
import { disposeParams, initDinoParams, selectBackend } from '@dinoq/dino';
import { trainLinearClassifier, type LinearClassifierResult } from '../src/linear-probe';
import { exportAttentionMaps } from '../src/attention-export';
import type { FeatureSet } from '../src/knn';
import { tinyConfig } from './tiny-vit';

/** The real path: the same evaluations on the wasm backend (with the project's kernels) and on cpu. */

function features(n: number, seed: string): FeatureSet {
  const rng = seedrandom(seed);
  const dim = 6;
  const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
  const features = Float32Array.from({ length: n * dim }, (_, k) => {
    const i = Math.floor(k / dim);
    return (k % dim === labels[i] ? 2 : 0) + rng() - 0.5;
  });
  return { features, labels, count: n, dim };
}

async function onBackend<T>(name: 'cpu' | 'wasm', fn: () => Promise<T>): Promise<T> {
  if (name === 'wasm') await selectBackend('wasm');
  else await tf.setBackend('cpu');
  return fn();
}

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('evaluation on wasm matches cpu', () => {
  it('trains the same linear classifier', async () => {
    const run = () =>
      trainLinearClassifier(features(96, 'tr'), features(48, 'te'), { epochs: 3, lr: 0.5, batchSize: 16 });
    const wasm: LinearClassifierResult = await onBackend('wasm', run);
    const cpu: LinearClassifierResult = await onBackend('cpu', run);
    expect(cpu.curve[2].trainLoss).toBeLessThan(cpu.curve[0].trainLoss);
    wasm.curve.forEach((e, i) => {
      expect(e.trainLoss).toBeCloseTo(cpu.curve[i].trainLoss, 3);
      expect(e.top1).toBe(cpu.curve[i].top1);
    });
    expect(wasm.top1).toBeGreaterThan(90);
  });

  it('exports the same attention masks', async () => {
    const image = {
      pixels: Uint8Array.from({ length: 20 * 20 }, (_, i) => (i * 37) % 256),
      width: 20,
      height: 20,
      channels: 1,
    };
    const run = async () => {
      const params = initDinoParams(tinyConfig, 2);
      try {
        return await exportAttentionMaps(params, tinyConfig, [image, image], { scale: 1 });
      } finally {
        disposeParams(params);
      }
    };
    const wasm = await onBackend('wasm', run);
    const cpu = await onBackend('cpu', run);
    expect(Object.keys(wasm.files)).toEqual(Object.keys(cpu.files));
    for (const name of Object.keys(cpu.files).filter((n) => n.includes('-mask-')))
      expect(Buffer.from(wasm.files[name]).equals(Buffer.from(cpu.files[name]))).toBe(true);
    expect(wasm.index).toEqual(cpu.index);
  });
});
