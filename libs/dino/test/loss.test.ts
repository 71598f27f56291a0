import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { crossViewMask, crossViewPairs, dinoLoss, type DinoLossOptions } from '../src/loss';

/** Row-wise log-softmax of x·scale in float64. */
function logSoftmaxRow(row: number[], scale: number): number[] {
  const z = row.map((x) => x * scale);
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((acc, x) => acc + Math.exp(x - m), 0));
  return z.map((x) => x - lse);
}

/**
 * The reference formulation in float64: a double loop over (teacher view, student view)
 * pairs, each pair the mean over samples of −Σ_k P_t · log P_s.
 */
function referenceLoss(s: number[][], t: number[][], c: number[], o: DinoLossOptions): number {
  const numGlobal = o.numGlobal ?? 2;
  const batch = t.length / numGlobal;
  let total = 0;
  let pairs = 0;
  for (let iq = 0; iq < numGlobal; iq++) {
    for (let v = 0; v < o.numViews; v++) {
      if (v === iq) continue;
      let pair = 0;
      for (let b = 0; b < batch; b++) {
        const q = logSoftmaxRow(
          t[iq * batch + b].map((x, k) => x - c[k]),
          1 / o.teacherTemp,
        ).map(Math.exp);
        const logp = logSoftmaxRow(s[v * batch + b], 1 / o.studentTemp);
        pair -= q.reduce((acc, qk, k) => acc + qk * logp[k], 0);
      }
      total += pair / batch;
      pairs++;
    }
  }
  return total / pairs;
}

/** Central differences of the float64 reference. */
function referenceGradient(s: number[][], t: number[][], c: number[], o: DinoLossOptions): number[][] {
  const h = 1e-5;
  return s.map((row, r) =>
    row.map((_, k) => {
      const at = (d: number) =>
        referenceLoss(
          s.map((rr, i) => (i === r ? rr.map((x, j) => (j === k ? x + d : x)) : rr)),
          t,
          c,
          o,
        );
      return (at(h) - at(-h)) / (2 * h);
    }),
  );
}

const rows = (x: tf.Tensor) => x.arraySync() as number[][];

function randomLogits(rows: number, k: number, scale: number, seed: number): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.randomNormal([rows, k], 0, 1, 'float32', seed), scale) as tf.Tensor2D);
}

describe('dinoLoss', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('counts M = 2V − 2 pairs and masks the same-view diagonal', () => {
    expect(crossViewPairs(10)).toBe(18);
    expect(crossViewPairs(2)).toBe(2);
    expect(Array.from(crossViewMask(3))).toEqual([0, 1, 1, 0, 1, 1]);
  });

  it('matches a hand-computed case, including center and both temperatures', () => {
    // Shifted by the center and scaled by τt = 0.5, the teacher rows are [0, 0] and [ln 3, 0],
    // i.e. P_t = (½, ½) and (¾, ¼); scaled by τs = 0.1 the student rows give the same two
    // distributions. Pairs: (t0, s1) and (t1, s0).
    const ln3 = Math.log(3);
    const teacher = tf.tensor2d([1, 0, 1 + 0.5 * ln3, 0], [2, 2]);
    const student = tf.tensor2d([0, 0, 0.1 * ln3, 0], [2, 2]);
    const center = tf.tensor1d([1, 0]);
    const h01 = -(0.5 * Math.log(0.75) + 0.5 * Math.log(0.25));
    const h10 = -(0.75 * Math.log(0.5) + 0.25 * Math.log(0.5));
    const loss = dinoLoss(student, teacher, center, { studentTemp: 0.1, teacherTemp: 0.5, numViews: 2 });
    expect(loss.shape).toEqual([]);
    expect(loss.dataSync()[0]).toBeCloseTo((h01 + h10) / 2, 5);
    expect((h01 + h10) / 2).toBeCloseTo(0.765068, 5);
    tf.dispose([teacher, student, center, loss]);
  });

  it.each([
    { numViews: 4, numGlobal: 2, batch: 3, k: 7 },
    { numViews: 10, numGlobal: 2, batch: 2, k: 16 },
    { numViews: 2, numGlobal: 2, batch: 5, k: 3 },
    { numViews: 3, numGlobal: 1, batch: 2, k: 4 },
  ])(
    'equals the double-loop reference (V=$numViews, G=$numGlobal, B=$batch, K=$k)',
    ({ numViews, numGlobal, batch, k }) => {
      const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews, numGlobal };
      const s = randomLogits(numViews * batch, k, 1, 1);
      const t = randomLogits(numGlobal * batch, k, 1, 2);
      const c = randomLogits(1, k, 0.3, 3);
      const got = dinoLoss(s, t, c, opts);
      const want = referenceLoss(rows(s), rows(t), rows(c)[0], opts);
      expect(Math.abs(got.dataSync()[0] - want)).toBeLessThan(1e-5);
      tf.dispose([s, t, c, got]);
    },
  );

  it('has the reference gradient with respect to the student logits', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.07, numViews: 5 };
    const s = randomLogits(5 * 3, 6, 1, 4);
    const t = randomLogits(2 * 3, 6, 1, 5);
    const c = randomLogits(1, 6, 0.3, 16);
    const got = rows(tf.grad((x: tf.Tensor) => dinoLoss(x, t, c, opts))(s));
    const want = referenceGradient(rows(s), rows(t), rows(c)[0], opts);
    let maxErr = 0;
    let maxAbs = 0;
    want.forEach((row, r) =>
      row.forEach((w, k) => {
        maxErr = Math.max(maxErr, Math.abs(got[r][k] - w));
        maxAbs = Math.max(maxAbs, Math.abs(w));
      }),
    );
    expect(maxErr).toBeLessThan(1e-5);
    expect(maxAbs).toBeGreaterThan(1e-3);
    tf.dispose([s, t, c]);
  });

  it('sends no gradient to the teacher logits, even when they come from trainable variables', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 3 };
    const s = randomLogits(3 * 2, 4, 1, 6);
    const t = randomLogits(2 * 2, 4, 1, 7);
    const c = tf.zeros([4]);
    expect(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => dinoLoss(a, b, c, opts))([s, t])).toThrow(
      /Cannot compute gradient/,
    );

    const studentVar = tf.variable(s, true);
    const teacherVar = tf.variable(t, true);
    const { value, grads } = tf.variableGrads(
      () => dinoLoss(studentVar, teacherVar, c, opts),
      [studentVar, teacherVar],
    );
    expect(Object.keys(grads)).toEqual([studentVar.name]);
    tf.dispose([s, t, c, studentVar, teacherVar, value, ...Object.values(grads)]);
  });

  it('sums micro-batch losses and gradients to the full-batch ones when given the full batch size', () => {
    const numViews = 4;
    const batch = 4;
    const k = 5;
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews };
    const s = randomLogits(numViews * batch, k, 1, 8);
    const t = randomLogits(2 * batch, k, 1, 9);
    const c = randomLogits(1, k, 0.2, 10);
    // Rows of one micro-batch: the same sample range taken from every view block.
    const rowsOf = (x: tf.Tensor2D, views: number, from: number, n: number) =>
      tf.concat(Array.from({ length: views }, (_, v) => tf.slice(x, [v * batch + from, 0], [n, k])));
    const halves = [0, 2].map((from) => ({ s: rowsOf(s, numViews, from, 2), t: rowsOf(t, 2, from, 2) }));

    const full = dinoLoss(s, t, c, opts);
    const parts = halves.map((h) => dinoLoss(h.s, h.t, c, { ...opts, batchSize: batch }));
    expect(Math.abs(parts[0].dataSync()[0] + parts[1].dataSync()[0] - full.dataSync()[0])).toBeLessThan(1e-5);

    const fullGrad = tf.grad((x: tf.Tensor) => dinoLoss(x, t, c, opts))(s) as tf.Tensor2D;
    halves.forEach((h, half) => {
      const g = tf.grad((x: tf.Tensor) => dinoLoss(x, h.t, c, { ...opts, batchSize: batch }))(
        h.s,
      ) as tf.Tensor2D;
      const want = rowsOf(fullGrad, numViews, half * 2, 2);
      expect(tf.max(tf.abs(tf.sub(g, want))).dataSync()[0]).toBeLessThan(1e-6);
    });
    tf.dispose([s, t, c, full, ...parts, fullGrad]);
  });

  it('leaves no tensors behind, with or without gradients', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 3 };
    const s = randomLogits(6, 4, 1, 11);
    const t = randomLogits(4, 4, 1, 12);
    const c = tf.zeros([1, 4]);
    const before = tf.memory().numTensors;
    dinoLoss(s, t, c, opts).dispose();
    const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => dinoLoss(x, t, c, opts))(s);
    tf.dispose([value, grad]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([s, t, c]);
  });

  it('rejects inconsistent inputs with errors naming the problem', () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 3 };
    const s = tf.zeros([6, 4]);
    const t = tf.zeros([4, 4]);
    const c = tf.zeros([4]);
    expect(() => dinoLoss(tf.zeros([7, 4]), t, c, opts)).toThrow(
      /studentLogits rows \(7\) must equal numViews × B = 3 × 2/,
    );
    expect(() => dinoLoss(s, tf.zeros([3, 4]), c, opts)).toThrow(/teacherLogits rows \(3\).*numGlobal \(2\)/);
    expect(() => dinoLoss(s, tf.zeros([4, 5]), c, opts)).toThrow(/teacherLogits has 5 columns/);
    expect(() => dinoLoss(s, t, tf.zeros([2, 4]), opts)).toThrow(/center must have shape \[4\] or \[1, 4\]/);
    expect(() => dinoLoss(tf.zeros([2, 4]), tf.zeros([2, 4]), c, { ...opts, numViews: 1 })).toThrow(
      /numViews must be/,
    );
    expect(() => dinoLoss(s, t, c, { ...opts, numGlobal: 4 })).toThrow(/numGlobal must be/);
    expect(() => dinoLoss(s, t, c, { ...opts, teacherTemp: 0 })).toThrow(/teacherTemp must be a positive/);
    expect(() => dinoLoss(s, t, c, { ...opts, batchSize: 0 })).toThrow(
      /batchSize must be a positive integer/,
    );
    expect(() => dinoLoss(tf.zeros([6]), t, c, opts)).toThrow(/studentLogits must be 2-D/);
    tf.dispose([s, t, c]);
  });

  it('gives the same value and gradient on the wasm backend as on cpu (within 1e-5)', async () => {
    const opts = { studentTemp: 0.1, teacherTemp: 0.04, numViews: 4 };
    const k = 32;
    const data = [randomLogits(4 * 3, k, 1, 13), randomLogits(2 * 3, k, 1, 14), randomLogits(1, k, 0.3, 15)];
    const arrays = data.map((x) => ({ values: x.dataSync().slice(), shape: x.shape }));
    const run = () => {
      const [s, t, c] = arrays.map((a) => tf.tensor(a.values, a.shape));
      const loss = dinoLoss(s, t, c, opts);
      const grad = tf.grad((x: tf.Tensor) => dinoLoss(x, t, c, opts))(s);
      const out = { loss: loss.dataSync()[0], grad: grad.dataSync().slice() };
      tf.dispose([s, t, c, loss, grad]);
      return out;
    };
    const onCpu = run();
    tf.dispose(data);
    try {
      expect(await tf.setBackend('wasm')).toBe(true);
      const onWasm = run();
      expect(Math.abs(onWasm.loss - onCpu.loss)).toBeLessThan(1e-5);
      let maxErr = 0;
      onCpu.grad.forEach((g, i) => (maxErr = Math.max(maxErr, Math.abs(g - onWasm.grad[i]))));
      expect(maxErr).toBeLessThan(1e-5);
    } finally {
      await tf.setBackend('cpu');
    }
  });
});
