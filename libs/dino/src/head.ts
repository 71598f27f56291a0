import * as tf from '@tensorflow/tfjs-core';
import type { HeadConfig, ModelConfig } from '@dinoq/config';
import { getParam, type ParamTensors } from './params';
import { linear } from './layers/linear';
import { gelu, type GeluKind } from './layers/gelu';

/**
 * ‖x‖² floor matching F.normalize's max(‖x‖, 1e-12): rsqrt(s + 1e-24) equals 1/max(√s, 1e-12)
 * except for norms within a hair of 1e-12, and it avoids tf.maximum (slow on wasm).
 */
const NORM_EPS_SQUARED = 1e-24;

/** Names of the head's MLP linears: `head.mlp` for one layer, else `head.mlp.0`, `.2`, … (GELUs sit at odd indices). */
export function headLinearNames(nlayers: number): string[] {
  if (nlayers === 1) return ['head.mlp'];
  return Array.from({ length: nlayers }, (_, i) => `head.mlp.${2 * i}`);
}

/** Widths through the MLP: [inDim, hidden…, bottleneck]. */
export function headWidths(
  inDim: number,
  head: Pick<HeadConfig, 'nlayers' | 'hiddenDim' | 'bottleneckDim'>,
): number[] {
  return [inDim, ...Array<number>(head.nlayers - 1).fill(head.hiddenDim), head.bottleneckDim];
}

/**
 * x / ‖x‖ per row, as y = x·r with r = (‖x‖² + eps)^−½. Backward: dx = r·(dy − y·Σ(dy⊙y)),
 * exact for this r; only y and r are kept.
 */
const l2NormalizeRows = tf.customGrad((x, save) => {
  const r = tf.rsqrt(tf.add(tf.sum(tf.square(x as tf.Tensor), -1, true), NORM_EPS_SQUARED));
  const y = tf.mul(x as tf.Tensor, r);
  (save as tf.GradSaveFunc)([y, r]);
  return {
    value: y,
    gradFunc: (dy: tf.Tensor, [ys, rs]: tf.Tensor[]) =>
      tf.tidy(() => tf.mul(tf.sub(dy, tf.mul(ys, tf.sum(tf.mul(dy, ys), -1, true))), rs)),
  };
});

export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return l2NormalizeRows(x) as tf.Tensor2D;
}

/**
 * W = g·v/‖v‖ with v `[bottleneck, K]` and g `[K, 1]`: each prototype (a column of v) is
 * normalised over the bottleneck dimension, as PyTorch weight_norm with dim 0 does on the
 * reference's `[K, bottleneck]` layout. With u = v/‖v‖: dg = Σ_rows(dW⊙u) and
 * dv = (g/‖v‖)·(dW − u·Σ_rows(dW⊙u)).
 */
const weightNorm = tf.customGrad((v, g, save) => {
  const k = (v as tf.Tensor).shape[1]!;
  const gRow = tf.reshape(g as tf.Tensor, [1, k]);
  const invNorm = tf.rsqrt(tf.sum(tf.square(v as tf.Tensor), 0, true));
  const u = tf.mul(v as tf.Tensor, invNorm);
  (save as tf.GradSaveFunc)([u, invNorm, gRow]);
  return {
    value: tf.mul(u, gRow),
    gradFunc: (dW: tf.Tensor, [us, inv, gs]: tf.Tensor[]) =>
      tf.tidy(() => {
        const along = tf.sum(tf.mul(dW, us), 0, true);
        const dv = tf.mul(tf.sub(dW, tf.mul(us, along)), tf.mul(gs, inv));
        return [dv, tf.reshape(along, [k, 1])];
      }),
  };
});

export function weightNormalized(v: tf.Tensor2D, g: tf.Tensor): tf.Tensor2D {
  const k = v.shape[1];
  if (g.rank !== 2 || g.shape[0] !== k || g.shape[1] !== 1) {
    throw new Error(`head.last_layer.weight_g must be [${k}, 1] for weight_v [${v.shape}], got [${g.shape}]`);
  }
  return weightNorm(v, g) as tf.Tensor2D;
}

export interface HeadOptions {
  config: { head: Pick<HeadConfig, 'nlayers'>; model: Pick<ModelConfig, 'gelu'> };
}

/**
 * DINO projection head (spec §3): MLP with GELU between layers → L2-normalised bottleneck →
 * weight-normalised linear without bias. `[M, D]` features → `[M, K]` logits.
 * With normLastLayer g is 1 and frozen by the optimizer, so it is used as stored either way.
 */
export function dinoHead(params: ParamTensors, features: tf.Tensor2D, opts: HeadOptions): tf.Tensor2D {
  const kind: GeluKind = opts.config.model.gelu;
  return tf.tidy(() => {
    const names = headLinearNames(opts.config.head.nlayers);
    let x = features;
    names.forEach((name, i) => {
      x = linear(
        x,
        getParam(params, `${name}.weight`) as tf.Tensor2D,
        getParam(params, `${name}.bias`) as tf.Tensor1D,
      );
      if (i < names.length - 1) x = gelu(x, kind);
    });
    const w = weightNormalized(
      getParam(params, 'head.last_layer.weight_v') as tf.Tensor2D,
      getParam(params, 'head.last_layer.weight_g'),
    );
    return linear(l2Normalize(x), w);
  });
}
