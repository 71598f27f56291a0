import * as tf from '@tensorflow/tfjs-core';
import { getParam, type ParamTensors } from '../params';
import { linear } from '../layers/linear';

export interface AttentionShape {
  /** Images in x. */
  batch: number;
  /** Tokens per image (patches + [CLS]). */
  tokens: number;
  numHeads: number;
}

export interface AttentionOutput {
  /** `[batch·tokens, D]` after the output projection. */
  out: tf.Tensor2D;
  /** Softmax probabilities `[batch, heads, tokens, tokens]`, when asked for; no gradient flows through them. */
  probs?: tf.Tensor4D;
}

/** `[B·N, D]` → `[B·H, N, d]`: 4-D transposes only, no split. */
function toHeads(x: tf.Tensor, s: AttentionShape): tf.Tensor3D {
  const headDim = x.shape[1]! / s.numHeads;
  const perHead = tf.transpose(tf.reshape(x, [s.batch, s.tokens, s.numHeads, headDim]), [0, 2, 1, 3]);
  return tf.reshape(perHead, [s.batch * s.numHeads, s.tokens, headDim]);
}

/** `[B·H, N, d]` → `[B·N, D]`. */
function fromHeads(x: tf.Tensor, s: AttentionShape): tf.Tensor2D {
  const headDim = x.shape[2]!;
  const perToken = tf.transpose(tf.reshape(x, [s.batch, s.numHeads, s.tokens, headDim]), [0, 2, 1, 3]);
  return tf.reshape(perToken, [s.batch * s.tokens, s.numHeads * headDim]);
}

function transposeLast(x: tf.Tensor): tf.Tensor3D {
  return tf.transpose(x as tf.Tensor3D, [0, 2, 1]);
}

/** softmax(q·kᵀ·d^−½) for q, k in head layout. Scaling q touches d instead of N values per row. */
function probabilities(
  qHeads: tf.Tensor3D,
  kHeads: tf.Tensor3D,
): { qScaled: tf.Tensor3D; probs: tf.Tensor3D } {
  const qScaled = tf.mul(qHeads, qHeads.shape[2] ** -0.5) as tf.Tensor3D;
  return { qScaled, probs: tf.softmax(tf.matMul(qScaled, kHeads, false, true)) };
}

/**
 * Scaled dot-product attention over heads, rows in and out (`[B·N, D]` each). The backward
 * is written out (dV = Pᵀ·dC, dP = dC·Vᵀ, dS = P⊙(dP − rowsum(dP⊙P)), dQ = s·dS·K,
 * dK = dSᵀ·(s·Q)) with explicit transposes, and keeps q, k, v and P.
 */
function attentionCore(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, shape: AttentionShape): tf.Tensor2D {
  const f = tf.customGrad((q0, k0, v0, save) => {
    const kHeads = toHeads(k0 as tf.Tensor, shape);
    const vHeads = toHeads(v0 as tf.Tensor, shape);
    const { qScaled, probs } = probabilities(toHeads(q0 as tf.Tensor, shape), kHeads);
    (save as tf.GradSaveFunc)([qScaled, kHeads, vHeads, probs]);
    return {
      value: fromHeads(tf.matMul(probs, vHeads), shape),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.tidy(() => {
          const [qs, ks, vs, p] = saved as tf.Tensor3D[];
          const dContext = toHeads(dy, shape);
          const dV = tf.matMul(transposeLast(p), dContext);
          const dP = tf.matMul(dContext, transposeLast(vs));
          const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))) as tf.Tensor3D;
          const dQ = tf.mul(tf.matMul(dS, ks), qs.shape[2] ** -0.5);
          const dK = tf.matMul(transposeLast(dS), qs);
          return [fromHeads(dQ, shape), fromHeads(dK, shape), fromHeads(dV, shape)];
        }),
    };
  });
  return f(q, k, v) as tf.Tensor2D;
}

function project(params: ParamTensors, prefix: string, name: string, x: tf.Tensor2D): tf.Tensor2D {
  const weight = getParam(params, `${prefix}.${name}.weight`) as tf.Tensor2D;
  const bias = params.get(`${prefix}.${name}.bias`) as tf.Tensor1D | undefined;
  return linear(x, weight, bias);
}

function checkShape(prefix: string, x: tf.Tensor2D, shape: AttentionShape): void {
  if (x.shape[1] % shape.numHeads !== 0) {
    throw new Error(`${prefix}: ${shape.numHeads} heads do not divide width ${x.shape[1]}`);
  }
  if (x.shape[0] !== shape.batch * shape.tokens) {
    throw new Error(`${prefix}: ${x.shape[0]} rows, expected ${shape.batch} images × ${shape.tokens} tokens`);
  }
}

/**
 * Multi-head self-attention of block `prefix` (e.g. `backbone.blocks.3.attn`) on `[B·N, D]`
 * rows (spec §2.4). q, k and v are three linears rather than one fused qkv plus a split,
 * because split copies whole tensors on wasm.
 */
export function attention(
  params: ParamTensors,
  prefix: string,
  x: tf.Tensor2D,
  shape: AttentionShape,
  returnProbs = false,
): AttentionOutput {
  checkShape(prefix, x, shape);
  const context = attentionCore(
    project(params, prefix, 'q', x),
    project(params, prefix, 'k', x),
    project(params, prefix, 'v', x),
    shape,
  );
  const out = linear(
    context,
    getParam(params, `${prefix}.proj.weight`) as tf.Tensor2D,
    getParam(params, `${prefix}.proj.bias`) as tf.Tensor1D,
  );
  return returnProbs ? { out, probs: attentionProbs(params, prefix, x, shape) } : { out };
}

/** Only the attention probabilities `[B, heads, N, N]` (v and the projection are not computed); no gradient. */
export function attentionProbs(
  params: ParamTensors,
  prefix: string,
  x: tf.Tensor2D,
  shape: AttentionShape,
): tf.Tensor4D {
  checkShape(prefix, x, shape);
  return tf.tidy(() => {
    const q = toHeads(project(params, prefix, 'q', x), shape);
    const k = toHeads(project(params, prefix, 'k', x), shape);
    return tf.reshape(probabilities(q, k).probs, [shape.batch, shape.numHeads, shape.tokens, shape.tokens]);
  });
}
