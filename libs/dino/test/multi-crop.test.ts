import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { parseRunConfig } from '@dinoq/config';
import { disposeParams, type Params } from '../src/params';
import { initDinoParams } from '../src/init';
import { cropGroups, multiCropForward, type MultiCropOptions } from '../src/multi-crop';
import { maxAbsDiff, randomInput, toTensor } from './layers-reference';

const config = parseRunConfig({
  model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 2, numHeads: 2, dropPathRate: 0.2 },
  head: { outDim: 32, hiddenDim: 24, bottleneckDim: 8, nlayers: 3, normLastLayer: true },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
});
const B = 2;
const K = 32;

let params: Params;
let crops: tf.Tensor4D[];

beforeAll(async () => {
  await tf.setBackend('cpu');
  params = initDinoParams(config, 7);
  crops = [16, 16, 8, 8].map((s, i) => toTensor(randomInput([B, s, s, 3], 100 + i)) as tf.Tensor4D);
});

afterAll(() => {
  disposeParams(params);
  tf.dispose(crops);
});

/** ⟨r, logits⟩ as a scalar with its own gradient (tfjs-core registers none for Sum/Multiply). */
function weightedSum(logits: tf.Tensor, r: tf.Tensor): tf.Scalar {
  const f = tf.customGrad((x) => ({
    value: tf.sum(tf.mul(x as tf.Tensor, r)),
    gradFunc: (dy: tf.Tensor) => tf.mul(dy, r),
  }));
  return f(logits) as tf.Scalar;
}

const training: MultiCropOptions = { config, training: true, seed: 11, step: 5, microBatch: 0 };

function lossOf(r: tf.Tensor): () => tf.Scalar {
  return () => weightedSum(multiCropForward(params, crops, training), r);
}

describe('multiCropForward', () => {
  it('groups consecutive crops of equal size', () => {
    const shapes = [16, 16, 8, 8, 16].map((s) => ({ shape: [1, s, s, 3] }) as tf.Tensor4D);
    expect(cropGroups(shapes)).toEqual([
      [0, 2],
      [2, 4],
      [4, 5],
    ]);
  });

  it('returns [numCrops·B, K] logits in crop order', () => {
    const all = multiCropForward(params, crops, { config });
    expect(all.shape).toEqual([crops.length * B, K]);
    crops.forEach((crop, i) => {
      const alone = multiCropForward(params, [crop], { config });
      const rows = tf.slice(all, [i * B, 0], [B, K]);
      expect(maxAbsDiff(rows.dataSync(), alone.dataSync())).toBeLessThan(1e-5);
      tf.dispose([alone, rows]);
    });
    all.dispose();
  });

  it('every trainable tensor gets a non-zero gradient; the frozen weight_g none', () => {
    const r = toTensor(randomInput([crops.length * B, K], 200));
    const { value, grads } = tf.variableGrads(lossOf(r));
    const trainable = [...params].filter(([, v]) => v.trainable);
    expect(trainable.length).toBe(params.size - 1);
    expect(params.get('head.last_layer.weight_g')!.trainable).toBe(false);
    for (const [name, v] of trainable) {
      const g = grads[v.name];
      expect({ name, has: g !== undefined }).toEqual({ name, has: true });
      const norm = tf.norm(g).dataSync()[0];
      expect({ name, nonZero: norm > 0 && Number.isFinite(norm) }).toEqual({ name, nonZero: true });
    }
    expect(grads[params.get('head.last_layer.weight_g')!.name]).toBeUndefined();
    tf.dispose([r, value, ...Object.values(grads)]);
  });

  it('gradients match finite differences of the loss along random directions', () => {
    const r = toTensor(randomInput([crops.length * B, K], 201));
    const names = [
      'backbone.pos_embed',
      'backbone.cls_token',
      'backbone.patch_embed.proj.weight',
      'backbone.blocks.0.attn.k.weight',
      'backbone.blocks.1.mlp.fc1.bias',
      'backbone.norm.weight',
      'head.mlp.2.weight',
      'head.last_layer.weight_v',
    ];
    const vars = names.map((n) => params.get(n)!);
    const { value, grads } = tf.variableGrads(lossOf(r), vars);
    const eps = 1e-2;
    const lossAt = () => tf.tidy(() => lossOf(r)().dataSync()[0]);
    names.forEach((name, i) => {
      const v = vars[i];
      const original = v.clone();
      const u = tf.tidy(() => {
        const d = toTensor(randomInput(v.shape, 300 + i));
        return tf.div(d, tf.norm(d));
      });
      const analytic = tf.tidy(() => tf.sum(tf.mul(grads[v.name], u)).dataSync()[0]);
      v.assign(tf.tidy(() => tf.add(original, tf.mul(u, eps))));
      const up = lossAt();
      v.assign(tf.tidy(() => tf.sub(original, tf.mul(u, eps))));
      const down = lossAt();
      v.assign(original);
      const numeric = (up - down) / (2 * eps);
      expect({
        name,
        error: Math.abs(numeric - analytic) <= 1e-2 * Math.max(Math.abs(analytic), 0.05),
      }).toEqual({
        name,
        error: true,
      });
      tf.dispose([original, u]);
    });
    tf.dispose([r, value, ...Object.values(grads)]);
  });

  it('leaves no tensor behind after forward and backward inside tidy', () => {
    const r = toTensor(randomInput([crops.length * B, K], 202));
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(lossOf(r));
        tf.dispose([value, ...Object.values(grads)]);
      });
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    r.dispose();
  });

  it('rejects crops with different batch sizes', () => {
    const odd = tf.zeros([3, 8, 8, 3]) as tf.Tensor4D;
    expect(() => multiCropForward(params, [crops[0], odd], { config })).toThrow(/crop 1.*batch 2/);
    expect(() => multiCropForward(params, [], { config })).toThrow(/no crops/);
    odd.dispose();
  });
});
