import * as tf from '@tensorflow/tfjs-core';

export interface ClipResult {
  /**
   * Gradients after clipping, every one a new tensor (unscaled ones are clones, which cost
   * nothing on cpu and with the wasm Identity override): the caller disposes the input and
   * the output maps independently.
   */
  grads: Map<string, tf.Tensor>;
  /** ‖g‖₂ of every input gradient before clipping, for logging. */
  norms: Map<string, number>;
  /** Largest of `norms` (0 without gradients; NaN if any norm is NaN). */
  maxNorm: number;
}

/**
 * Per-tensor gradient clipping (spec §7.3; not a global norm): each gradient whose norm n
 * gives clip/(n + 1e-6) < 1 is multiplied by that factor. `clip` 0 disables scaling (norms
 * are still measured). All norms come back in one read from the backend.
 */
export function clipGradients(grads: ReadonlyMap<string, tf.Tensor>, clip: number): ClipResult {
  if (!(clip >= 0) || !Number.isFinite(clip))
    throw new Error(`clipGradients: clip must be a finite number ≥ 0, got ${clip}`);
  const names = [...grads.keys()];
  const norms = new Map<string, number>();
  const out = new Map<string, tf.Tensor>();
  if (names.length === 0) return { grads: out, norms, maxNorm: 0 };

  const normTensor = tf.tidy(() =>
    tf.stack(names.map((name) => tf.sqrt(tf.sum(tf.square(grads.get(name)!))))),
  );
  const values = normTensor.dataSync();
  normTensor.dispose();

  let maxNorm = 0;
  names.forEach((name, i) => {
    const g = grads.get(name)!;
    const n = values[i];
    norms.set(name, n);
    maxNorm = Number.isNaN(n) || Number.isNaN(maxNorm) ? NaN : Math.max(maxNorm, n);
    const coef = clip / (n + 1e-6);
    // NaN norms compare false and pass through untouched, as in the reference.
    out.set(name, clip > 0 && coef < 1 ? tf.mul(g, coef) : tf.clone(g));
  });
  return { grads: out, norms, maxNorm };
}
