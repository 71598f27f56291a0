import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { isLastLayer, isRegularized, lastLayerSkip, paramGroups } from '../src/optim/param-groups';
import type { Params } from '../src/params';

describe('parameter groups', () => {
  let params: Params;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    const shapes: [string, number[], boolean?][] = [
      ['backbone.cls_token', [1, 1, 4]],
      ['backbone.pos_embed', [1, 5, 4]],
      ['backbone.patch_embed.proj.weight', [12, 4]],
      ['backbone.patch_embed.proj.bias', [4]],
      ['backbone.blocks.0.norm1.weight', [4]],
      ['backbone.blocks.0.norm1.bias', [4]],
      ['backbone.blocks.0.attn.q.weight', [4, 4]],
      ['backbone.blocks.0.attn.q.bias', [4]],
      ['backbone.blocks.0.mlp.fc1.weight', [4, 16]],
      ['backbone.norm.weight', [4]],
      ['head.mlp.0.weight', [4, 8]],
      ['head.mlp.0.bias', [8]],
      ['head.last_layer.weight_v', [8, 6]],
      ['head.last_layer.weight_g', [6, 1], false],
    ];
    params = new Map(
      shapes.map(([name, shape, trainable]) => [name, tf.variable(tf.zeros(shape), trainable ?? true)]),
    );
  });

  afterAll(() => {
    for (const v of params.values()) v.dispose();
  });

  it('decays weights, pos_embed and cls_token, but not biases or 1-D tensors', () => {
    const groups = paramGroups(params);
    expect(groups.regularized).toEqual([
      'backbone.cls_token',
      'backbone.pos_embed',
      'backbone.patch_embed.proj.weight',
      'backbone.blocks.0.attn.q.weight',
      'backbone.blocks.0.mlp.fc1.weight',
      'head.mlp.0.weight',
      'head.last_layer.weight_v',
    ]);
    expect(groups.notRegularized).toEqual([
      'backbone.patch_embed.proj.bias',
      'backbone.blocks.0.norm1.weight',
      'backbone.blocks.0.norm1.bias',
      'backbone.blocks.0.attn.q.bias',
      'backbone.norm.weight',
      'head.mlp.0.bias',
    ]);
  });

  it('puts a trainable weight_g (K×1) in the decayed group and leaves a frozen one out', () => {
    expect(isRegularized('head.last_layer.weight_g', [6, 1])).toBe(true);
    const g = tf.variable(tf.ones([6, 1]), true);
    const withG = new Map(params);
    withG.set('head.last_layer.weight_g', g);
    expect(paramGroups(withG).regularized).toContain('head.last_layer.weight_g');
    const all = [...paramGroups(params).regularized, ...paramGroups(params).notRegularized];
    expect(all).not.toContain('head.last_layer.weight_g');
    g.dispose();
  });

  it('treats any name ending in .bias as not regularized, whatever its rank', () => {
    expect(isRegularized('some.bias', [3, 3])).toBe(false);
    expect(isRegularized('some.biased', [3, 3])).toBe(true);
  });

  it('skips every last_layer tensor only while epoch < freezeLastLayer', () => {
    expect(isLastLayer('head.last_layer.weight_v')).toBe(true);
    expect(isLastLayer('head.mlp.4.weight')).toBe(false);
    const frozen = lastLayerSkip(0, 1);
    expect(frozen('head.last_layer.weight_v')).toBe(true);
    expect(frozen('head.last_layer.weight_g')).toBe(true);
    expect(frozen('head.mlp.0.weight')).toBe(false);
    expect(lastLayerSkip(1, 1)('head.last_layer.weight_v')).toBe(false);
    expect(lastLayerSkip(0, 0)('head.last_layer.weight_v')).toBe(false);
  });
});
