import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { parseRunConfig, type RunConfigInput } from '@dinoq/config';
import { cloneParams, initDinoParams, isTrainable, paramShapes } from '../src/init';
import { disposeParams, type Params } from '../src/params';

const base: RunConfigInput = {
  model: { arch: 'custom', patchSize: 4, embedDim: 32, depth: 2, numHeads: 2 },
  head: { outDim: 64, hiddenDim: 48, bottleneckDim: 16, nlayers: 3 },
  augment: { globalCropSize: 16, localCropSize: 8, localCropsNumber: 2 },
};
const config = parseRunConfig(base);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function values(params: Params, name: string): Float32Array {
  return params.get(name)!.dataSync() as Float32Array;
}

function stats(x: Float32Array) {
  const mean = x.reduce((s, v) => s + v, 0) / x.length;
  const std = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
  return { mean, std, min: Math.min(...x), max: Math.max(...x) };
}

describe('paramShapes', () => {
  it('lists every parameter in reference order with the params.ts layouts', () => {
    const shapes = paramShapes(config);
    const names = [...shapes.keys()];
    expect(names.slice(0, 4)).toEqual([
      'backbone.cls_token',
      'backbone.pos_embed',
      'backbone.patch_embed.proj.weight',
      'backbone.patch_embed.proj.bias',
    ]);
    expect(names.slice(-2)).toEqual(['head.last_layer.weight_g', 'head.last_layer.weight_v']);
    expect(shapes.get('backbone.pos_embed')).toEqual([1, 17, 32]);
    expect(shapes.get('backbone.patch_embed.proj.weight')).toEqual([48, 32]);
    expect(shapes.get('backbone.blocks.1.attn.q.weight')).toEqual([32, 32]);
    expect(shapes.get('backbone.blocks.1.mlp.fc1.weight')).toEqual([32, 128]);
    expect(shapes.get('backbone.blocks.1.mlp.fc2.weight')).toEqual([128, 32]);
    expect(shapes.get('head.mlp.0.weight')).toEqual([32, 48]);
    expect(shapes.get('head.mlp.4.weight')).toEqual([48, 16]);
    expect(shapes.has('backbone.blocks.2.norm1.weight')).toBe(false);
  });

  it('has no q/k/v biases when qkvBias is off', () => {
    const shapes = paramShapes(parseRunConfig({ ...base, model: { ...base.model, qkvBias: false } }));
    expect(shapes.has('backbone.blocks.0.attn.q.bias')).toBe(false);
    expect(shapes.has('backbone.blocks.0.attn.proj.bias')).toBe(true);
  });
});

describe('initDinoParams', () => {
  it('is a pure function of the seed', () => {
    const a = initDinoParams(config, 5);
    const b = initDinoParams(config, 5);
    const c = initDinoParams(config, 6);
    for (const name of a.keys()) expect(values(b, name)).toEqual(values(a, name));
    expect(values(c, 'backbone.blocks.0.attn.q.weight')).not.toEqual(
      values(a, 'backbone.blocks.0.attn.q.weight'),
    );
    expect(values(c, 'head.last_layer.weight_v')).not.toEqual(values(a, 'head.last_layer.weight_v'));
    [a, b, c].forEach(disposeParams);
  });

  it('follows the reference initialisation', () => {
    const p = initDinoParams(parseRunConfig({ ...base, head: { ...base.head, outDim: 1024 } }), 1);
    const weight = stats(values(p, 'head.mlp.2.weight'));
    expect(weight.std).toBeGreaterThan(0.019);
    expect(weight.std).toBeLessThan(0.021);
    expect(Math.abs(weight.mean)).toBeLessThan(1e-3);
    expect(stats(values(p, 'backbone.pos_embed')).std).toBeCloseTo(0.02, 2);
    for (const name of ['backbone.blocks.0.mlp.fc1.bias', 'backbone.norm.bias', 'head.mlp.0.bias'])
      expect(values(p, name).every((v) => v === 0)).toBe(true);
    for (const name of ['backbone.blocks.1.norm2.weight', 'head.last_layer.weight_g'])
      expect(values(p, name).every((v) => v === 1)).toBe(true);
    // Conv2d default: U(±1/√fan_in) with fan_in = C·p·p = 48 for weight and bias.
    const bound = 1 / Math.sqrt(48);
    for (const name of ['backbone.patch_embed.proj.weight', 'backbone.patch_embed.proj.bias']) {
      const s = stats(values(p, name));
      expect(s.min).toBeGreaterThanOrEqual(-bound);
      expect(s.max).toBeLessThanOrEqual(bound);
      expect(s.max).toBeGreaterThan(0.8 * bound);
    }
    const v = stats(values(p, 'head.last_layer.weight_v'));
    expect(v.min).toBeGreaterThanOrEqual(-0.25);
    expect(v.max).toBeLessThanOrEqual(0.25);
    expect(v.std).toBeCloseTo(0.25 / Math.sqrt(3), 2);
    disposeParams(p);
  });

  it('freezes weight_g exactly when normLastLayer is on', () => {
    expect(config.head.normLastLayer).toBe(true);
    expect(isTrainable('head.last_layer.weight_g', config)).toBe(false);
    expect(isTrainable('head.last_layer.weight_v', config)).toBe(true);
    const frozen = initDinoParams(config, 2);
    expect(frozen.get('head.last_layer.weight_g')!.trainable).toBe(false);
    expect([...frozen].filter(([, v]) => !v.trainable).map(([n]) => n)).toEqual(['head.last_layer.weight_g']);
    const free = initDinoParams(parseRunConfig({ ...base, head: { ...base.head, normLastLayer: false } }), 2);
    expect([...free.values()].every((v) => v.trainable)).toBe(true);
    [frozen, free].forEach(disposeParams);
  });
});

describe('cloneParams', () => {
  it('copies values into independent, non-trainable variables', () => {
    const student = initDinoParams(config, 3);
    const teacher = cloneParams(student, false);
    expect([...teacher.keys()]).toEqual([...student.keys()]);
    for (const [name, t] of teacher) {
      expect(t.trainable).toBe(false);
      expect(t).not.toBe(student.get(name));
      expect(t.dataSync()).toEqual(student.get(name)!.dataSync());
    }
    const name = 'backbone.cls_token';
    const before = Float32Array.from(values(teacher, name));
    student.get(name)!.assign(tf.zeros(student.get(name)!.shape));
    expect(values(teacher, name)).toEqual(before);
    [student, teacher].forEach(disposeParams);
  });
});
