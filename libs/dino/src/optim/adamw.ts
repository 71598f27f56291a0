import * as tf from '@tensorflow/tfjs-core';
import type { Params } from '../params';
import { isRegularized, isTrainable } from './param-groups';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Which parameters receive weight decay; defaults to the reference group rule. */
  regularized?: (name: string, shape: readonly number[]) => boolean;
}

export interface AdamWStepOptions {
  /** Learning rate of every group for this step. */
  lr: number;
  /** Decoupled weight decay of the regularized group for this step (the other group uses 0). */
  weightDecay: number;
  /** Parameters to leave out of this step entirely: no moment update, no step count, no decay. */
  skip?: (name: string) => boolean;
}

const AVG = 'exp_avg.';
const AVG_SQ = 'exp_avg_sq.';

interface Moments {
  expAvg: tf.Tensor;
  expAvgSq: tf.Tensor;
  steps: number;
}

/**
 * AdamW with PyTorch's semantics (decay p ← p·(1 − lr·wd) first, then the Adam step with
 * bias correction). State is created on a parameter's first update and each parameter keeps
 * its own step count, so a tensor skipped for a while (the frozen last layer) starts its bias
 * correction from 1 when it joins, exactly like a PyTorch parameter whose grad was None.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  private readonly params: Params;
  private readonly decayed = new Set<string>();
  private readonly moments = new Map<string, Moments>();

  constructor(params: Params, opts: AdamWOptions = {}) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    for (const [key, b] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const)
      if (!(b >= 0 && b < 1)) throw new Error(`AdamW: ${key} must be in [0, 1), got ${b}`);
    if (!(this.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${this.eps}`);
    const regularized = opts.regularized ?? isRegularized;
    this.params = new Map();
    for (const [name, v] of params) {
      if (!isTrainable(v)) continue;
      this.params.set(name, v);
      if (regularized(name, v.shape)) this.decayed.add(name);
    }
  }

  /** Names of the parameters this optimizer updates (trainable ones), in order. */
  get paramNames(): string[] {
    return [...this.params.keys()];
  }

  isDecayed(name: string): boolean {
    return this.decayed.has(name);
  }

  /**
   * One update of every parameter that has a gradient in `grads` and is not skipped.
   * Parameters without a gradient are left alone, as PyTorch does for a None grad.
   * The gradients are read, never disposed.
   */
  step(grads: ReadonlyMap<string, tf.Tensor>, opts: AdamWStepOptions): void {
    const { lr, weightDecay: wd, skip } = opts;
    if (!(lr >= 0) || !Number.isFinite(lr))
      throw new Error(`AdamW.step: lr must be a finite number ≥ 0, got ${lr}`);
    if (!(wd >= 0) || !Number.isFinite(wd))
      throw new Error(`AdamW.step: weightDecay must be a finite number ≥ 0, got ${wd}`);
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW.step: gradient "${name}" has no trainable parameter of that name`);
      if (!tf.util.arraysEqual(g.shape, p.shape))
        throw new Error(`AdamW.step: gradient "${name}" has shape [${g.shape}], parameter has [${p.shape}]`);
    }
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (!g || skip?.(name)) continue;
      this.update(name, p, g, lr, this.decayed.has(name) ? wd : 0);
    }
  }

  private update(name: string, p: tf.Variable, g: tf.Tensor, lr: number, wd: number): void {
    const { beta1, beta2, eps } = this;
    const prev = this.moments.get(name);
    const steps = (prev?.steps ?? 0) + 1;
    const stepSize = lr / (1 - beta1 ** steps);
    const bc2Sqrt = Math.sqrt(1 - beta2 ** steps);
    const [expAvg, expAvgSq] = tf.tidy(() => {
      const m = prev ? tf.add(tf.mul(prev.expAvg, beta1), tf.mul(g, 1 - beta1)) : tf.mul(g, 1 - beta1);
      const v = prev
        ? tf.add(tf.mul(prev.expAvgSq, beta2), tf.mul(tf.square(g), 1 - beta2))
        : tf.mul(tf.square(g), 1 - beta2);
      const decayedP = wd > 0 ? tf.mul(p, 1 - lr * wd) : p;
      const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
      p.assign(tf.sub(decayedP, tf.mul(tf.div(m, denom), stepSize)));
      return [m, v];
    });
    prev?.expAvg.dispose();
    prev?.expAvgSq.dispose();
    this.moments.set(name, { expAvg, expAvgSq, steps });
  }

  /** Update count of every parameter that has state. */
  stepCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, m] of this.moments) out[name] = m.steps;
    return out;
  }

  /**
   * The moment tensors, keyed `exp_avg.<name>` and `exp_avg_sq.<name>` (PyTorch's state
   * names), without copying. They stay owned by the optimizer: read them (e.g. to write a
   * checkpoint) before the next step(), loadState() or dispose(), and never dispose them.
   */
  state(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [name, m] of this.moments) {
      out.set(AVG + name, m.expAvg);
      out.set(AVG_SQ + name, m.expAvgSq);
    }
    return out;
  }

  /**
   * Replaces all state with copies of the given moments (tensors or raw float32 data of the
   * parameter's size; the caller keeps ownership of its own). Every parameter with state needs
   * both moments and a step count ≥ 1; parameters absent from `stepCounts` start fresh, as
   * before their first update. Nothing changes if any entry is invalid.
   */
  loadState(
    state: ReadonlyMap<string, tf.Tensor | Float32Array>,
    stepCounts: Readonly<Record<string, number>>,
  ): void {
    for (const key of state.keys()) {
      const name = key.startsWith(AVG)
        ? key.slice(AVG.length)
        : key.startsWith(AVG_SQ)
          ? key.slice(AVG_SQ.length)
          : null;
      if (name === null) throw new Error(`AdamW.loadState: unexpected state key "${key}"`);
      if (!(name in stepCounts)) throw new Error(`AdamW.loadState: "${key}" has no step count for "${name}"`);
    }
    for (const [name, steps] of Object.entries(stepCounts)) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW.loadState: "${name}" is not a trainable parameter of this optimizer`);
      if (!Number.isInteger(steps) || steps < 1)
        throw new Error(`AdamW.loadState: step count of "${name}" must be an integer ≥ 1, got ${steps}`);
      for (const key of [AVG + name, AVG_SQ + name]) {
        const t = state.get(key);
        if (!t) throw new Error(`AdamW.loadState: missing "${key}"`);
        if (t instanceof Float32Array) {
          if (t.length !== p.size)
            throw new Error(
              `AdamW.loadState: "${key}" has ${t.length} values, parameter [${p.shape}] has ${p.size}`,
            );
        } else {
          if (!tf.util.arraysEqual(t.shape, p.shape))
            throw new Error(`AdamW.loadState: "${key}" has shape [${t.shape}], parameter has [${p.shape}]`);
          if (t.dtype !== 'float32')
            throw new Error(`AdamW.loadState: "${key}" must be float32, got ${t.dtype}`);
        }
      }
    }
    this.disposeState();
    const copy = (key: string, shape: number[]) => {
      const t = state.get(key)!;
      return t instanceof Float32Array ? tf.tensor(t, shape, 'float32') : tf.clone(t);
    };
    for (const [name, steps] of Object.entries(stepCounts)) {
      const shape = this.params.get(name)!.shape;
      this.moments.set(name, {
        expAvg: copy(AVG + name, shape),
        expAvgSq: copy(AVG_SQ + name, shape),
        steps,
      });
    }
  }

  private disposeState(): void {
    for (const m of this.moments.values()) {
      m.expAvg.dispose();
      m.expAvgSq.dispose();
    }
    this.moments.clear();
  }

  /** Frees the moments; the parameters belong to the caller and are left alone. */
  dispose(): void {
    this.disposeState();
  }
}
