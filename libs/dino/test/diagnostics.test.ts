import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { teacherEntropy, teacherStudentKl } from '../src/diagnostics';
import { dinoLoss } from '../src/loss';

function logSoftmaxRow(row: number[], scale: number): number[] {
  const z = row.map((x) => x * scale);
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((acc, x) => acc + Math.exp(x - m), 0));
  return z.map((x) => x - lse);
}

/** Float64 reference: entropy over teacher rows and KL over the loss's pairs, by loops. */
function reference(
  s: number[][],
  t: number[][],
  c: number[],
  o: { studentTemp: number; teacherTemp: number; numViews: number },
) {
  const batch = t.length / 2;
  const logPt = t.map((row) =>
    logSoftmaxRow(
      row.map((x, k) => x - c[k]),
      1 / o.teacherTemp,
    ),
  );
  const logPs = s.map((row) => logSoftmaxRow(row, 1 / o.studentTemp));
  const entropy = logPt.reduce((acc, lp) => acc - lp.reduce((a, l) => a + Math.exp(l) * l, 0), 0) / t.length;
  let kl = 0;
  let pairs = 0;
  for (let i = 0; i < 2; i++) {
    for (let v = 0; v < o.numViews; v++) {
      if (v === i) continue;
      pairs++;
      for (let b = 0; b < batch; b++) {
        const lt = logPt[i * batch + b];
        const ls = logPs[v * batch + b];
        kl += lt.reduce((a, l, k) => a + Math.exp(l) * (l - ls[k]), 0) / batch;
      }
    }
  }
  return { entropy, kl: kl / pairs };
}

const rows = (x: tf.Tensor) => x.arraySync() as number[][];

describe('collapse diagnostics', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('match a float64 loop reference and the loss', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 4 };
    const s = tf.tidy(() => tf.randomNormal([4 * 3, 6], 0, 1, 'float32', 1));
    const t = tf.tidy(() => tf.mul(tf.randomNormal([2 * 3, 6], 0, 1, 'float32', 2), 0.1));
    const c = tf.tidy(() => tf.mul(tf.randomNormal([1, 6], 0, 1, 'float32', 3), 0.05));
    const want = reference(rows(s), rows(t), rows(c)[0], opts);
    const entropy = teacherEntropy(t, c, opts.teacherTemp);
    const kl = teacherStudentKl(s, t, c, opts);
    expect(entropy).toBeCloseTo(want.entropy, 5);
    expect(kl).toBeCloseTo(want.kl, 5);
    // Each teacher view has the same number of partners, so KL = loss − H(P_t).
    const loss = dinoLoss(s, t, c, opts);
    expect(kl).toBeCloseTo(loss.dataSync()[0] - entropy, 4);
    tf.dispose([s, t, c, loss]);
  });

  it('read ln K for a uniform teacher and ~0 for a one-hot teacher', () => {
    const k = 8;
    const uniform = tf.zeros([4, k]);
    const c = tf.zeros([k]);
    expect(teacherEntropy(uniform, c, 0.04)).toBeCloseTo(Math.log(k), 5);
    const oneHot = tf.tidy(() => tf.mul(tf.oneHot(tf.tensor1d([0, 3, 5, 7], 'int32'), k), 10));
    expect(teacherEntropy(oneHot, c, 0.04)).toBeLessThan(1e-6);
    tf.dispose([uniform, c, oneHot]);
  });

  it('read a KL of ~0 when every student view already predicts the teacher target', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 5 };
    const batch = 3;
    const t = tf.tidy(() => {
      const one = tf.randomNormal([batch, 7], 0, 1, 'float32', 4);
      return tf.concat([one, one]);
    });
    const c = tf.tidy(() => tf.mul(tf.randomNormal([1, 7], 0, 1, 'float32', 5), 0.1));
    // softmax(s/τs) = softmax((t − c)/τt) when s = (t − c)·τs/τt.
    const s = tf.tidy(() =>
      tf.tile(
        tf.mul(tf.sub(tf.slice(t, [0, 0], [batch, 7]), c), opts.studentTemp / opts.teacherTemp),
        [5, 1],
      ),
    );
    expect(Math.abs(teacherStudentKl(s, t, c, opts))).toBeLessThan(1e-5);
    expect(teacherEntropy(t, c, opts.teacherTemp)).toBeGreaterThan(0);
    tf.dispose([s, t, c]);
  });

  it('leave no tensors behind and validate their inputs', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 3 };
    const s = tf.zeros([6, 4]);
    const t = tf.zeros([4, 4]);
    const c = tf.zeros([1, 4]);
    const before = tf.memory().numTensors;
    teacherEntropy(t, c, 0.04);
    teacherStudentKl(s, t, c, opts);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => teacherStudentKl(tf.zeros([5, 4]), t, c, opts)).toThrow(
      /^teacherStudentKl: studentLogits rows/,
    );
    expect(() => teacherStudentKl(s, t, tf.zeros([3]), opts)).toThrow(
      /^teacherStudentKl: center must have shape/,
    );
    expect(() => teacherEntropy(t, tf.zeros([5]), 0.04)).toThrow(/center must have shape \[4\]/);
    expect(() => teacherEntropy(t, c, 0)).toThrow(/teacherTemp must be a positive/);
    tf.dispose([s, t, c]);
  });
});
