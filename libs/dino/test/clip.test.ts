import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { clipGradients } from '../src/optim/clip';

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe('clipGradients', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('scales each tensor whose norm exceeds the clip by clip/(n + 1e-6) and reports every norm', () => {
    const big = tf.tensor2d([
      [3, 0],
      [0, 4],
    ]); // norm 5
    const small = tf.tensor1d([0.6, 0.8]); // norm 1
    const grads = new Map<string, tf.Tensor>([
      ['a.weight', big],
      ['a.bias', small],
    ]);
    const { grads: out, norms, maxNorm } = clipGradients(grads, 3);
    expect(norms.get('a.weight')).toBeCloseTo(5, 5);
    expect(norms.get('a.bias')).toBeCloseTo(1, 5);
    expect(maxNorm).toBeCloseTo(5, 5);
    const coef = 3 / (5 + 1e-6);
    const clipped = values(out.get('a.weight')!);
    [3 * coef, 0, 0, 4 * coef].forEach((want, i) => expect(clipped[i]).toBeCloseTo(want, 6));
    expect(out.get('a.bias')).not.toBe(small);
    expect(values(out.get('a.bias')!)).toEqual(values(small));
    expect(out.get('a.weight')!.shape).toEqual([2, 2]);
    tf.dispose([...grads.values(), ...out.values()]);
  });

  it('clips per tensor, not by the global norm', () => {
    // Each norm 2.5 < 3, although the global norm √12.5 ≈ 3.54 > 3.
    const a = tf.tensor1d([1.5, 2]);
    const b = tf.tensor1d([2, 1.5]);
    const { grads: out } = clipGradients(
      new Map([
        ['a', a],
        ['b', b],
      ]),
      3,
    );
    expect(values(out.get('a')!)).toEqual(values(a));
    expect(values(out.get('b')!)).toEqual(values(b));
    tf.dispose([a, b, ...out.values()]);
  });

  it('does nothing with clip 0 but still measures', () => {
    const g = tf.tensor1d([30, 40]);
    const { grads: out, norms } = clipGradients(new Map([['w', g]]), 0);
    expect(values(out.get('w')!)).toEqual([30, 40]);
    expect(norms.get('w')).toBeCloseTo(50, 4);
    tf.dispose([g, ...out.values()]);
  });

  it('returns tensors independent of its input, handles an empty map and rejects a negative clip', () => {
    expect(clipGradients(new Map(), 3).maxNorm).toBe(0);
    expect(() => clipGradients(new Map(), -1)).toThrow(/clip must be a finite number ≥ 0, got -1/);
    const grads = new Map([
      ['scaled', tf.tensor1d([30, 40])],
      ['kept', tf.tensor1d([0.3, 0.4])],
    ]);
    const before = tf.memory().numTensors;
    const { grads: out } = clipGradients(grads, 3);
    expect(tf.memory().numTensors).toBe(before + 2);
    tf.dispose([...grads.values()]);
    expect(values(out.get('kept')!)).toEqual([0.3, 0.4].map(Math.fround));
    tf.dispose([...out.values()]);
    expect(tf.memory().numTensors).toBe(before - 2);
  });
});
