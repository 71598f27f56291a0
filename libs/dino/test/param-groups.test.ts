import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { isLastLayer, isRegularized, isTrainable } from '../src/optim/param-groups';

describe('parameter groups', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('decays weights, pos_embed, cls_token and weight_g, but not biases or 1-D tensors', () => {
    const shapes: [string, number[]][] = [
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
      ['head.last_layer.weight_g', [6, 1]],
    ];
    expect(shapes.filter(([name, shape]) => isRegularized(name, shape)).map(([name]) => name)).toEqual([
      'backbone.cls_token',
      'backbone.pos_embed',
      'backbone.patch_embed.proj.weight',
      'backbone.blocks.0.attn.q.weight',
      'backbone.blocks.0.mlp.fc1.weight',
      'head.mlp.0.weight',
      'head.last_layer.weight_v',
      'head.last_layer.weight_g',
    ]);
  });

  it('treats any name ending in .bias as not regularized, whatever its rank', () => {
    expect(isRegularized('some.bias', [3, 3])).toBe(false);
    expect(isRegularized('some.biased', [3, 3])).toBe(true);
  });

  it('counts plain tensors and trainable variables as trainable, frozen variables not', () => {
    const frozen = tf.variable(tf.ones([6, 1]), false);
    const trainable = tf.variable(tf.ones([6, 1]), true);
    const plain = tf.ones([2]);
    expect([isTrainable(frozen), isTrainable(trainable), isTrainable(plain)]).toEqual([false, true, true]);
    tf.dispose([frozen, trainable, plain]);
  });

  it('recognises both tensors of the last layer and nothing else', () => {
    expect(isLastLayer('head.last_layer.weight_v')).toBe(true);
    expect(isLastLayer('head.last_layer.weight_g')).toBe(true);
    expect(isLastLayer('head.mlp.4.weight')).toBe(false);
  });
});
