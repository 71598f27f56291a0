import type * as tf from '@tensorflow/tfjs-core';
import { getParam, type ParamTensors } from '../params';
import type { Rng } from '../rng';
import { layerNorm } from '../layers/layer-norm';
import { dropPath } from '../layers/drop-path';
import { residualAdd } from '../layers/structural';
import type { GeluKind } from '../layers/gelu';
import { attention, attentionProbs, type AttentionShape } from './attention';
import { mlp } from './mlp';

export interface BlockContext extends AttentionShape {
  gelu: GeluKind;
  training: boolean;
  /** This block's stochastic-depth rate. */
  dropPathRate: number;
  /** Mask randomness per residual branch (0 = attention, 1 = MLP); needed when training with a rate. */
  rng?: (branch: number) => Rng;
}

function norm(params: ParamTensors, name: string, x: tf.Tensor2D): tf.Tensor2D {
  return layerNorm(
    x,
    getParam(params, `${name}.weight`) as tf.Tensor1D,
    getParam(params, `${name}.bias`) as tf.Tensor1D,
  );
}

function branchDrop(x: tf.Tensor2D, ctx: BlockContext, branch: number): tf.Tensor2D {
  return dropPath(x, {
    batch: ctx.batch,
    rate: ctx.dropPathRate,
    training: ctx.training,
    rng: ctx.rng?.(branch),
  });
}

/** Pre-norm transformer block i on `[B·N, D]` rows (spec §2.4); each branch gets its own mask. */
export function block(params: ParamTensors, index: number, x: tf.Tensor2D, ctx: BlockContext): tf.Tensor2D {
  const p = `backbone.blocks.${index}`;
  const attended = attention(params, `${p}.attn`, norm(params, `${p}.norm1`, x), ctx).out;
  const y = residualAdd(x, branchDrop(attended, ctx, 0));
  const mixed = mlp(params, `${p}.mlp`, norm(params, `${p}.norm2`, y), ctx.gelu);
  return residualAdd(y, branchDrop(mixed, ctx, 1));
}

/** Softmax attention of block i on LN1 of its input, `[B, heads, N, N]`; the rest of the block is not run. */
export function blockAttentionProbs(
  params: ParamTensors,
  index: number,
  x: tf.Tensor2D,
  shape: AttentionShape,
): tf.Tensor4D {
  const p = `backbone.blocks.${index}`;
  return attentionProbs(params, `${p}.attn`, norm(params, `${p}.norm1`, x), shape);
}
