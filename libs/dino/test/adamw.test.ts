import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { AdamW } from '../src/optim/adamw';
import { isLastLayer } from '../src/optim/param-groups';
import type { Params } from '../src/params';

const B1 = 0.9;
const B2 = 0.999;
const EPS = 1e-8;

/** PyTorch AdamW for one tensor, in float64. */
class ReferenceAdamW {
  private m: number[];
  private v: number[];
  steps = 0;

  constructor(readonly p: number[]) {
    this.m = p.map(() => 0);
    this.v = p.map(() => 0);
  }

  step(g: number[], lr: number, wd: number): void {
    this.steps++;
    const bc1 = 1 - B1 ** this.steps;
    const bc2 = 1 - B2 ** this.steps;
    for (let i = 0; i < this.p.length; i++) {
      this.p[i] *= 1 - lr * wd;
      this.m[i] = B1 * this.m[i] + (1 - B1) * g[i];
      this.v[i] = B2 * this.v[i] + (1 - B2) * g[i] * g[i];
      const denom = Math.sqrt(this.v[i]) / Math.sqrt(bc2) + EPS;
      this.p[i] -= (lr / bc1) * (this.m[i] / denom);
    }
  }
}

const values = (t: tf.Tensor) => Array.from(t.dataSync());

const initial: Record<string, { shape: number[]; data: number[]; trainable?: boolean }> = {
  'blocks.0.attn.q.weight': { shape: [2, 3], data: [0.5, -1, 0.25, 2, -0.75, 1.5] },
  'blocks.0.attn.q.bias': { shape: [3], data: [0.1, -0.2, 0.3] },
  'blocks.0.norm1.weight': { shape: [3], data: [1, 1, 1] },
  'head.last_layer.weight_v': { shape: [3, 2], data: [0.3, -0.3, 0.6, -0.6, 0.9, -0.9] },
  'head.last_layer.weight_g': { shape: [2, 1], data: [1, 1], trainable: false },
};

function makeParams(): Params {
  return new Map(
    Object.entries(initial).map(([name, { shape, data, trainable }]) => [
      name,
      tf.variable(tf.tensor(data, shape), trainable ?? true),
    ]),
  );
}

/** Deterministic, step-dependent gradients with mixed signs and sizes. */
function gradData(name: string, step: number): number[] {
  const n = initial[name].data.length;
  return Array.from({ length: n }, (_, i) => Math.sin(1.7 * (i + 1) + 0.9 * step + name.length) * (1 + i));
}

function makeGrads(names: string[], step: number): Map<string, tf.Tensor> {
  return new Map(names.map((name) => [name, tf.tensor(gradData(name, step), initial[name].shape)]));
}

function disposeAll(params: Params, opt?: AdamW): void {
  opt?.dispose();
  for (const v of params.values()) v.dispose();
}

const trainableNames = Object.keys(initial).filter((n) => initial[n].trainable !== false);

describe('AdamW', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('matches a float64 PyTorch-semantics AdamW over several steps, decaying only the regularized group', () => {
    const params = makeParams();
    const opt = new AdamW(params);
    expect(opt.paramNames).toEqual(trainableNames);
    expect(opt.isDecayed('blocks.0.attn.q.weight')).toBe(true);
    expect(opt.isDecayed('head.last_layer.weight_v')).toBe(true);
    expect(opt.isDecayed('blocks.0.attn.q.bias')).toBe(false);
    expect(opt.isDecayed('blocks.0.norm1.weight')).toBe(false);

    const refs = new Map(trainableNames.map((n) => [n, new ReferenceAdamW([...initial[n].data])]));
    const hyper = [
      { lr: 0.1, weightDecay: 0.04 },
      { lr: 0.05, weightDecay: 0.2 },
      { lr: 0.02, weightDecay: 0.4 },
      { lr: 0.01, weightDecay: 0.4 },
    ];
    hyper.forEach((h, step) => {
      const grads = makeGrads(trainableNames, step);
      opt.step(grads, h);
      tf.dispose([...grads.values()]);
      for (const name of trainableNames) {
        refs.get(name)!.step(gradData(name, step), h.lr, opt.isDecayed(name) ? h.weightDecay : 0);
        const got = values(params.get(name)!);
        refs.get(name)!.p.forEach((want, i) => expect(Math.abs(got[i] - want)).toBeLessThan(2e-6));
      }
    });
    expect(opt.stepCounts()).toEqual(Object.fromEntries(trainableNames.map((n) => [n, 4])));
    expect(values(params.get('head.last_layer.weight_g')!)).toEqual([1, 1]);
    disposeAll(params, opt);
  });

  it('applies decoupled decay p·(1 − lr·wd) to the regularized group only', () => {
    const params = makeParams();
    const opt = new AdamW(params);
    const zeros = new Map(trainableNames.map((n) => [n, tf.zerosLike(params.get(n)!)]));
    opt.step(zeros, { lr: 0.1, weightDecay: 0.5 });
    const factor = Math.fround(1 - 0.1 * 0.5);
    values(params.get('blocks.0.attn.q.weight')!).forEach((got, i) =>
      expect(got).toBe(Math.fround(Math.fround(initial['blocks.0.attn.q.weight'].data[i]) * factor)),
    );
    expect(values(params.get('blocks.0.attn.q.bias')!)).toEqual(
      initial['blocks.0.attn.q.bias'].data.map(Math.fround),
    );
    expect(values(params.get('blocks.0.norm1.weight')!)).toEqual([1, 1, 1]);
    tf.dispose([...zeros.values()]);
    disposeAll(params, opt);
  });

  it('skips frozen tensors entirely: bit-identical, no moments, no step count, no decay', () => {
    const params = makeParams();
    const opt = new AdamW(params);
    const frozenName = 'head.last_layer.weight_v';
    const before = values(params.get(frozenName)!);

    const g0 = makeGrads(trainableNames, 0);
    opt.step(g0, { lr: 0.1, weightDecay: 0.4, skip: isLastLayer });
    expect(values(params.get(frozenName)!)).toEqual(before);
    expect(opt.stepCounts()[frozenName]).toBeUndefined();
    const state = opt.state();
    expect(state.has(`exp_avg.${frozenName}`)).toBe(false);
    expect(state.has('exp_avg.blocks.0.attn.q.weight')).toBe(true);

    // When it joins, its bias correction starts from step 1, like a fresh parameter.
    const g1 = makeGrads(trainableNames, 1);
    opt.step(g1, { lr: 0.05, weightDecay: 0.4 });
    const ref = new ReferenceAdamW([...initial[frozenName].data]);
    ref.step(gradData(frozenName, 1), 0.05, 0.4);
    const got = values(params.get(frozenName)!);
    ref.p.forEach((want, i) => expect(Math.abs(got[i] - want)).toBeLessThan(1e-6));
    expect(opt.stepCounts()).toMatchObject({ [frozenName]: 1, 'blocks.0.attn.q.weight': 2 });
    tf.dispose([...g0.values(), ...g1.values()]);
    disposeAll(params, opt);
  });

  it('leaves parameters without a gradient untouched, like a None grad', () => {
    const params = makeParams();
    const opt = new AdamW(params);
    const grads = makeGrads(['blocks.0.attn.q.weight'], 0);
    opt.step(grads, { lr: 0.1, weightDecay: 0.4 });
    expect(opt.stepCounts()).toEqual({ 'blocks.0.attn.q.weight': 1 });
    expect(values(params.get('blocks.0.attn.q.bias')!)).toEqual(
      initial['blocks.0.attn.q.bias'].data.map(Math.fround),
    );
    tf.dispose([...grads.values()]);
    disposeAll(params, opt);
  });

  it('rejects unknown, frozen-by-construction or mis-shaped gradients and bad hyper-parameters', () => {
    const params = makeParams();
    const opt = new AdamW(params);
    const g = tf.zeros([2, 1]);
    expect(() => opt.step(new Map([['nope', g]]), { lr: 0.1, weightDecay: 0 })).toThrow(
      /gradient "nope" has no trainable parameter/,
    );
    expect(() => opt.step(new Map([['head.last_layer.weight_g', g]]), { lr: 0.1, weightDecay: 0 })).toThrow(
      /"head.last_layer.weight_g" has no trainable parameter/,
    );
    expect(() => opt.step(new Map([['blocks.0.attn.q.weight', g]]), { lr: 0.1, weightDecay: 0 })).toThrow(
      /gradient "blocks.0.attn.q.weight" has shape \[2,1\], parameter has \[2,3\]/,
    );
    expect(() => opt.step(new Map(), { lr: -1, weightDecay: 0 })).toThrow(/lr must be a finite number ≥ 0/);
    expect(() => opt.step(new Map(), { lr: 0.1, weightDecay: NaN })).toThrow(
      /weightDecay must be a finite number ≥ 0/,
    );
    expect(() => new AdamW(params, { beta1: 1 })).toThrow(/beta1 must be in \[0, 1\)/);
    g.dispose();
    disposeAll(params, opt);
  });

  it('round-trips its state: a restored optimizer continues identically', () => {
    const paramsA = makeParams();
    const optA = new AdamW(paramsA);
    for (let step = 0; step < 2; step++) {
      const grads = makeGrads(trainableNames, step);
      optA.step(grads, { lr: 0.05, weightDecay: 0.1, skip: step === 0 ? isLastLayer : undefined });
      tf.dispose([...grads.values()]);
    }
    const state = optA.state();
    const counts = optA.stepCounts();
    expect([...state.keys()].sort()).toEqual(
      trainableNames.flatMap((n) => [`exp_avg.${n}`, `exp_avg_sq.${n}`]).sort(),
    );

    const copyParams = (): Params => new Map([...paramsA].map(([n, v]) => [n, tf.variable(v, v.trainable)]));
    // One restored from the tensors, one from raw data as read back from a checkpoint file.
    const paramsB = copyParams();
    const optB = new AdamW(paramsB);
    optB.loadState(state, counts);
    expect(optB.stepCounts()).toEqual(counts);
    const paramsC = copyParams();
    const optC = new AdamW(paramsC);
    optC.loadState(new Map([...state].map(([k, t]) => [k, t.dataSync().slice() as Float32Array])), counts);

    const grads = makeGrads(trainableNames, 2);
    for (const opt of [optA, optB, optC]) opt.step(grads, { lr: 0.02, weightDecay: 0.3 });
    for (const name of paramsA.keys()) {
      expect(values(paramsB.get(name)!)).toEqual(values(paramsA.get(name)!));
      expect(values(paramsC.get(name)!)).toEqual(values(paramsA.get(name)!));
    }
    tf.dispose([...grads.values()]);
    disposeAll(paramsA, optA);
    disposeAll(paramsB, optB);
    disposeAll(paramsC, optC);
  });

  it('validates loaded state', () => {
    const params = makeParams();
    const opt = new AdamW(params);
    const m = tf.zeros([2, 3]);
    const wrong = tf.zeros([3, 2]);
    const name = 'blocks.0.attn.q.weight';
    const full = new Map([
      [`exp_avg.${name}`, m],
      [`exp_avg_sq.${name}`, m],
    ]);
    expect(() => opt.loadState(new Map([['momentum.x', m]]), {})).toThrow(
      /unexpected state key "momentum.x"/,
    );
    expect(() => opt.loadState(full, {})).toThrow(/has no step count/);
    expect(() => opt.loadState(new Map([[`exp_avg.${name}`, m]]), { [name]: 1 })).toThrow(
      /missing "exp_avg_sq\./,
    );
    expect(() => opt.loadState(full, { [name]: 0 })).toThrow(
      /step count of "blocks.0.attn.q.weight" must be an integer ≥ 1/,
    );
    expect(() => opt.loadState(new Map(), { 'head.last_layer.weight_g': 1 })).toThrow(
      /is not a trainable parameter/,
    );
    expect(() =>
      opt.loadState(
        new Map([
          [`exp_avg.${name}`, m],
          [`exp_avg_sq.${name}`, wrong],
        ]),
        { [name]: 3 },
      ),
    ).toThrow(/"exp_avg_sq.blocks.0.attn.q.weight" has shape \[3,2\], parameter has \[2,3\]/);
    expect(() =>
      opt.loadState(
        new Map([
          [`exp_avg.${name}`, new Float32Array(6)],
          [`exp_avg_sq.${name}`, new Float32Array(5)],
        ]),
        { [name]: 3 },
      ),
    ).toThrow(/"exp_avg_sq.blocks.0.attn.q.weight" has 5 values, parameter \[2,3\] has 6/);
    expect(opt.stepCounts()).toEqual({});
    opt.loadState(full, { [name]: 3 });
    expect(opt.stepCounts()).toEqual({ [name]: 3 });
    tf.dispose([m, wrong]);
    disposeAll(params, opt);
  });

  it('keeps the tensor count constant across steps and frees its state on dispose', () => {
    const params = makeParams();
    const baseline = tf.memory().numTensors;
    const opt = new AdamW(params);
    const grads = makeGrads(trainableNames, 0);
    opt.step(grads, { lr: 0.1, weightDecay: 0.1 });
    const afterFirst = tf.memory().numTensors;
    expect(afterFirst).toBe(baseline + grads.size + 2 * trainableNames.length);
    for (let i = 0; i < 3; i++) {
      opt.step(grads, { lr: 0.1, weightDecay: 0.1, skip: i === 1 ? isLastLayer : undefined });
      expect(tf.memory().numTensors).toBe(afterFirst);
    }
    expect(opt.state().size).toBe(2 * trainableNames.length);
    expect(tf.memory().numTensors).toBe(afterFirst);
    tf.dispose([...grads.values()]);
    opt.dispose();
    expect(tf.memory().numTensors).toBe(baseline);
    disposeAll(params);
  });
});
