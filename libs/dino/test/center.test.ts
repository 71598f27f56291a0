import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { centerFromSum, initialCenter, teacherLogitSum, updateCenter } from '../src/center';

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe('center', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('starts at zeros [1, K]', () => {
    const c = initialCenter(3);
    expect(c.shape).toEqual([1, 3]);
    expect(values(c)).toEqual([0, 0, 0]);
    c.dispose();
    expect(() => initialCenter(0)).toThrow(/outDim must be a positive integer/);
  });

  it('moves by c ← m·c + (1 − m)·batch, 0.9 by default', () => {
    const c = tf.tensor2d([[1, 2]]);
    const b = tf.tensor2d([[3, 4]]);
    const next = updateCenter(c, b);
    expect(next.shape).toEqual([1, 2]);
    const [x, y] = values(next);
    expect(x).toBeCloseTo(0.9 * 1 + 0.1 * 3, 6);
    expect(y).toBeCloseTo(0.9 * 2 + 0.1 * 4, 6);
    const other = updateCenter(tf.tensor1d([1, 2]), tf.tensor1d([3, 4]), 0.5);
    expect(other.shape).toEqual([1, 2]);
    expect(values(other)).toEqual([2, 3]);
    expect(values(c)).toEqual([1, 2]);
    tf.dispose([c, b, next, other]);
  });

  it('rejects a bad momentum or mismatched shapes', () => {
    const c = tf.zeros([1, 3]);
    expect(() => updateCenter(c, tf.zeros([1, 4]))).toThrow(/center \[1,3\] and batch center \[1,4\]/);
    expect(() => updateCenter(c, c, 1.5)).toThrow(/momentum must be in \[0, 1\]/);
    expect(() => centerFromSum(c, 0)).toThrow(/rows must be a positive integer/);
    expect(() => teacherLogitSum(tf.zeros([3]))).toThrow(/teacherLogits must be 2-D/);
    c.dispose();
  });

  it('gives the whole-batch mean from row sums accumulated over micro-batches', () => {
    const whole = tf.tidy(() => tf.randomNormal([2 * 6, 5], 0, 1, 'float32', 1));
    // Micro-batches of a two-view teacher output: rows of both views for samples 0..3, then 4..5.
    const part = (from: number, n: number) =>
      tf.concat([tf.slice(whole, [from, 0], [n, 5]), tf.slice(whole, [6 + from, 0], [n, 5])]);
    const parts = [part(0, 4), part(4, 2)];
    const want = tf.mean(whole, 0, true);

    const sums = parts.map(teacherLogitSum);
    const total = tf.add(sums[0], sums[1]);
    const got = centerFromSum(total, 12);
    expect(got.shape).toEqual([1, 5]);
    const diff = tf.max(tf.abs(tf.sub(got, want)));
    expect(diff.dataSync()[0]).toBeLessThan(1e-6);
    tf.dispose([whole, ...parts, want, ...sums, total, got, diff]);
  });
});
