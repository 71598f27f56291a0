import * as tf from '@tensorflow/tfjs-core';
import { resolveModelDims, type ModelConfig, type RunConfig } from '@dinoq/config';
import { getParam, type ParamTensors } from '../params';
import { rngFor } from '../rng';
import { layerNorm } from '../layers/layer-norm';
import { dropPathRates } from '../layers/drop-path';
import { reshape } from '../layers/structural';
import type { AttentionShape } from './attention';
import { block, blockAttentionProbs, type BlockContext } from './block';
import { patchEmbed } from './patch-embed';
import { posEmbedFor } from './pos-embed';
import { assembleTokens, clsRows } from './tokens';

/** MLP width of a block: int(D · mlpRatio), as the reference. */
export function mlpHiddenDim(model: Pick<ModelConfig, 'mlpRatio'>, embedDim: number): number {
  return Math.floor(embedDim * model.mlpRatio);
}

export interface VitOptions {
  config: Pick<RunConfig, 'model'>;
  /** Stochastic depth is active only in training mode. Default false. */
  training?: boolean;
  /** Overrides config.model.dropPathRate (the teacher uses 0). */
  dropPathRate?: number;
  /** Drop-path masks are drawn from rngFor(seed, 'drop-path', step, microBatch, cropGroup, block, branch). */
  seed?: number;
  step?: number;
  microBatch?: number;
  cropGroup?: number;
}

interface Embedded {
  /** `[B·(N+1), D]`, [CLS] first in every image's run of rows. */
  x: tf.Tensor2D;
  shape: AttentionShape;
}

/** Patch tokens with [CLS] prepended and the (resampled) positional table added (spec §2.3). */
function embed(params: ParamTensors, images: tf.Tensor4D, model: ModelConfig): Embedded {
  if (images.rank !== 4) throw new Error(`images must be NHWC [B, H, W, C], got [${images.shape}]`);
  if (images.shape[3] !== model.inChans) {
    throw new Error(`images have ${images.shape[3]} channels, config.model.inChans is ${model.inChans}`);
  }
  const batch = images.shape[0];
  const { tokens, gridH, gridW } = patchEmbed(params, images, model.patchSize);
  const pos = posEmbedFor(getParam(params, 'backbone.pos_embed'), gridH, gridW, model.posEmbedInterpolation);
  const x = assembleTokens(getParam(params, 'backbone.cls_token'), tokens, pos, batch);
  return { x, shape: { batch, tokens: gridH * gridW + 1, numHeads: resolveModelDims(model).numHeads } };
}

function blockContexts(opts: VitOptions, shape: AttentionShape): BlockContext[] {
  const model = opts.config.model;
  const { depth } = resolveModelDims(model);
  const training = opts.training ?? false;
  const rate = opts.dropPathRate ?? model.dropPathRate;
  const active = training && rate > 0;
  const seed = opts.seed;
  if (active && seed === undefined) throw new Error('training with drop path needs opts.seed');
  const position = [opts.step ?? 0, opts.microBatch ?? 0, opts.cropGroup ?? 0];
  return dropPathRates(depth, active ? rate : 0).map((blockRate, i) => ({
    ...shape,
    gelu: model.gelu,
    training,
    dropPathRate: blockRate,
    rng:
      seed === undefined ? undefined : (branch: number) => rngFor(seed, 'drop-path', ...position, i, branch),
  }));
}

/**
 * Runs blocks [0, end) and hands each output to `visit`. Every block runs in its own tidy so
 * that forward temporaries the backward does not need are freed block by block, and a block's
 * output is freed as soon as the next block has consumed it.
 */
function runBlocks(
  params: ParamTensors,
  x0: tf.Tensor2D,
  contexts: BlockContext[],
  end: number,
  visit?: (index: number, x: tf.Tensor2D) => void,
): tf.Tensor2D {
  let x = x0;
  for (let i = 0; i < end; i++) {
    const input = x;
    x = tf.tidy(() => block(params, i, input, contexts[i]));
    if (input !== x0) input.dispose();
    visit?.(i, x);
  }
  return x;
}

function finalNorm(params: ParamTensors, x: tf.Tensor2D): tf.Tensor2D {
  return layerNorm(
    x,
    getParam(params, 'backbone.norm.weight') as tf.Tensor1D,
    getParam(params, 'backbone.norm.bias') as tf.Tensor1D,
  );
}

function checkedDepth(params: ParamTensors, model: ModelConfig): number {
  const { depth } = resolveModelDims(model);
  if (
    !params.has(`backbone.blocks.${depth - 1}.norm1.weight`) ||
    params.has(`backbone.blocks.${depth}.norm1.weight`)
  ) {
    throw new Error(`parameters do not hold exactly ${depth} blocks (config.model)`);
  }
  return depth;
}

function asSequences(x: tf.Tensor2D, shape: AttentionShape): tf.Tensor3D {
  return reshape<tf.Rank.R3>(x, [shape.batch, shape.tokens, x.shape[1]]);
}

/** The DINO feature: [CLS] of the final-norm output, `[B, D]` (spec §2.7). */
export function vitForward(params: ParamTensors, images: tf.Tensor4D, opts: VitOptions): tf.Tensor2D {
  const depth = checkedDepth(params, opts.config.model);
  return tf.tidy(() => {
    const { x, shape } = embed(params, images, opts.config.model);
    const out = runBlocks(params, x, blockContexts(opts, shape), depth);
    // LayerNorm is per row, so normalising only the [CLS] rows gives the same feature for less work.
    return finalNorm(params, clsRows(out, shape.batch));
  });
}

/**
 * Softmax attention of the last block, `[B, heads, N+1, N+1]` (spec §2.7): blocks 0..L−2 run
 * in full, the last one only up to its attention probabilities on LN1 of its input. Eval mode.
 */
export function lastSelfAttention(params: ParamTensors, images: tf.Tensor4D, opts: VitOptions): tf.Tensor4D {
  const depth = checkedDepth(params, opts.config.model);
  return tf.tidy(() => {
    const { x, shape } = embed(params, images, opts.config.model);
    const before = runBlocks(params, x, blockContexts({ ...opts, training: false }, shape), depth - 1);
    return blockAttentionProbs(params, depth - 1, before, shape);
  });
}

/** Outputs of the last n blocks, each through the shared final norm: n × `[B, N+1, D]`. Eval mode. */
export function intermediateLayers(
  params: ParamTensors,
  images: tf.Tensor4D,
  n: number,
  opts: VitOptions,
): tf.Tensor3D[] {
  const depth = checkedDepth(params, opts.config.model);
  if (!Number.isInteger(n) || n < 1 || n > depth) {
    throw new Error(`intermediateLayers: n must be in 1..${depth}, got ${n}`);
  }
  return tf.tidy(() => {
    const { x, shape } = embed(params, images, opts.config.model);
    const outputs: tf.Tensor3D[] = [];
    runBlocks(params, x, blockContexts({ ...opts, training: false }, shape), depth, (i, out) => {
      if (i >= depth - n) outputs.push(asSequences(finalNorm(params, out), shape));
    });
    return outputs;
  });
}
