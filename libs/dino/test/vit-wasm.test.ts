import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { parseRunConfig } from '@dinoq/config';
import { disposeParams } from '../src/params';
import { initDinoParams } from '../src/init';
import { multiCropForward } from '../src/multi-crop';
import { lastSelfAttention } from '../src/vit/vit';
import { clearPosEmbedCache } from '../src/vit/pos-embed';
import { randomInput, toTensor } from './layers-reference';

/** The same tiny model run on the cpu and wasm backends: same seed, same inputs, same numbers. */

const config = parseRunConfig({
  model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 2, numHeads: 2, dropPathRate: 0.2 },
  head: { outDim: 32, hiddenDim: 24, bottleneckDim: 8, nlayers: 3 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
});

interface Run {
  logits: Float32Array;
  attention: Float32Array;
  grads: Map<string, Float32Array>;
}

function run(): Run {
  const params = initDinoParams(config, 4);
  const crops = [16, 16, 8, 8].map((s, i) => toTensor(randomInput([2, s, s, 3], 40 + i)) as tf.Tensor4D);
  const r = toTensor(randomInput([8, 32], 50));
  const opts = { config, training: true, seed: 1, step: 3 };
  const logits = tf.tidy(() => multiCropForward(params, crops, opts).dataSync() as Float32Array);
  const attention = tf.tidy(() => lastSelfAttention(params, crops[0], { config }).dataSync() as Float32Array);
  const weighted = tf.customGrad((x) => ({
    value: tf.sum(tf.mul(x as tf.Tensor, r)),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, r),
  }));
  const grads = new Map<string, Float32Array>();
  tf.tidy(() => {
    const trainable = [...params.values()].filter((v) => v.trainable);
    const out = tf.variableGrads(
      () => weighted(multiCropForward(params, crops, opts)) as tf.Scalar,
      trainable,
    );
    for (const [name, v] of params)
      if (v.trainable) grads.set(name, out.grads[v.name].dataSync() as Float32Array);
  });
  tf.dispose([...crops, r]);
  disposeParams(params);
  return { logits, attention, grads };
}

function maxRelativeError(a: Float32Array, b: Float32Array): number {
  let scale = 1e-3;
  for (const v of b) scale = Math.max(scale, Math.abs(v));
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m / scale;
}

afterEach(() => clearPosEmbedCache());

it('wasm forward, attention maps and gradients match the cpu backend', async () => {
  await tf.setBackend('cpu');
  const cpu = run();
  expect(await tf.setBackend('wasm')).toBe(true);
  const wasm = run();
  expect(wasm.logits.length).toBe(8 * 32);
  let logitError = 0;
  for (let i = 0; i < cpu.logits.length; i++)
    logitError = Math.max(logitError, Math.abs(cpu.logits[i] - wasm.logits[i]));
  expect(logitError).toBeLessThan(1e-4);
  expect(maxRelativeError(wasm.attention, cpu.attention)).toBeLessThan(1e-4);
  expect([...wasm.grads.keys()]).toEqual([...cpu.grads.keys()]);
  for (const [name, g] of cpu.grads) {
    expect({ name, close: maxRelativeError(wasm.grads.get(name)!, g) < 1e-3 }).toEqual({ name, close: true });
  }
});
