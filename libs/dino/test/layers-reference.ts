import * as tf from '@tensorflow/tfjs-core';
import { normal, rngFor } from '../src/rng';

/**
 * Test support: checks a tfjs function's values and hand-written gradients against a plain
 * float64 JavaScript reference, with gradients of the reference taken by central differences.
 * (tfjs-core's CommonJS build has no registered gradients, so autodiff cannot be the reference.)
 */

export interface RefInput {
  data: Float64Array;
  shape: number[];
}

/** Standard-normal values (times `scale`), rounded to float32 so both sides see the same inputs. */
export function randomInput(shape: number[], seed: number, scale = 1, offset = 0): RefInput {
  const rng = rngFor(seed, 'test-input');
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float64Array.from(Float32Array.from({ length: n }, () => offset + scale * normal(rng)));
  return { data, shape };
}

export function toTensor(x: RefInput): tf.Tensor {
  return tf.tensor(Float32Array.from(x.data), x.shape, 'float32');
}

export interface ReferenceCheck {
  valueError: number;
  gradErrors: number[];
}

/**
 * Max abs errors of the value and of each input's gradient of ⟨r, f(inputs)⟩ for a fixed
 * random r, tfjs vs reference.
 */
export function compareWithReference(
  tfFn: (...xs: tf.Tensor[]) => tf.Tensor,
  refFn: (...xs: Float64Array[]) => Float64Array,
  inputs: RefInput[],
  step = 1e-5,
): ReferenceCheck {
  const tensors = inputs.map(toTensor);
  const value = tfFn(...tensors);
  const expected = refFn(...inputs.map((x) => x.data));
  const got = value.dataSync();
  if (got.length !== expected.length)
    throw new Error(`value has ${got.length} elements, reference ${expected.length}`);
  const valueError = maxAbsDiff(got, expected);
  const r = randomInput(value.shape, 12345);
  const dy = toTensor(r);
  const grads = tf.grads((...xs: tf.Tensor[]) => tfFn(...xs))(tensors, dy);
  const objective = (xs: Float64Array[]) => {
    const y = refFn(...xs);
    let s = 0;
    for (let i = 0; i < y.length; i++) s += r.data[i] * y[i];
    return s;
  };
  const gradErrors = inputs.map((input, k) => {
    const numeric = new Float64Array(input.data.length);
    const xs = inputs.map((x) => Float64Array.from(x.data));
    for (let j = 0; j < numeric.length; j++) {
      const keep = xs[k][j];
      xs[k][j] = keep + step;
      const up = objective(xs);
      xs[k][j] = keep - step;
      const down = objective(xs);
      xs[k][j] = keep;
      numeric[j] = (up - down) / (2 * step);
    }
    return maxAbsDiff(grads[k].dataSync(), numeric);
  });
  tf.dispose([...tensors, value, dy, ...grads]);
  return { valueError, gradErrors };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function expectClose(check: ReferenceCheck, tol = 2e-5): void {
  expect(check.valueError).toBeLessThan(tol);
  check.gradErrors.forEach((e) => expect(e).toBeLessThan(tol));
}

/** Row-major [m, k] × [k, n]. */
export function matmul(a: Float64Array, b: Float64Array, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      for (let j = 0; j < n; j++) out[i * n + j] += av * b[p * n + j];
    }
  return out;
}

/** erf by its Maclaurin series; accurate to ~1e-14 for |x| ≤ 4, enough for test inputs. */
export function erf(x: number): number {
  if (Math.abs(x) > 4) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; Math.abs(term) > 1e-18 * Math.max(1, Math.abs(sum)) || n < 3; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** Each row of [rows, cols] mapped by f. */
export function mapRows(x: Float64Array, cols: number, f: (row: Float64Array) => Float64Array): Float64Array {
  const out = new Float64Array(x.length);
  for (let start = 0; start < x.length; start += cols) out.set(f(x.subarray(start, start + cols)), start);
  return out;
}
