import * as tf from '@tensorflow/tfjs-core';
import { resolveModelDims, type RunConfig } from '@dinoq/config';
import {
  decodeSafetensors,
  encodeSafetensors,
  fromReference,
  paramShapes,
  toReference,
  type HostTensor,
  type Params,
  type ParamTensors,
} from '@dinoq/dino';

/**
 * The teacher backbone as a safetensors file under the reference implementation's names and
 * layouts without prefix (`cls_token`, `pos_embed`, `patch_embed.proj.weight` [D, C, p, p],
 * `blocks.0.attn.qkv.weight` [3D, D], …, `norm.weight`; spec §2.8), i.e. what the released
 * DINO backbone checkpoints hold, so the weights load into timm / the reference ViT and back.
 */

const BACKBONE = 'backbone.';

function backboneShapes(config: Pick<RunConfig, 'model' | 'head' | 'augment'>): Map<string, number[]> {
  return new Map([...paramShapes(config)].filter(([name]) => name.startsWith(BACKBONE)));
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Safetensors bytes of the backbone parameters (`backbone.*`) of `params`; a head is ignored. */
export function exportBackbone(params: ParamTensors, config: RunConfig): Uint8Array {
  const expected = backboneShapes(config);
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const t = params.get(name);
    if (!t) problems.push(`missing ${name}`);
    else if (!sameShape(t.shape, shape)) problems.push(`${name} is [${t.shape}], config says [${shape}]`);
  }
  const extra = [...params.keys()].filter((n) => n.startsWith(BACKBONE) && !expected.has(n));
  if (extra.length) problems.push(`not in the config's model: ${extra.join(', ')}`);
  if (problems.length)
    throw new Error(`exportBackbone: parameters do not match config.model — ${problems.join('; ')}`);
  const selected = new Map([...expected.keys()].map((name) => [name, params.get(name)!]));
  const reference = toReference(selected, { prefix: BACKBONE, inChans: config.model.inChans });
  const tensors = new Map<string, HostTensor>(
    [...reference].map(([name, t]) => [name, { dtype: 'float32', shape: t.shape, data: t.data }]),
  );
  const { embedDim, depth, numHeads } = resolveModelDims(config.model);
  return encodeSafetensors(tensors, {
    format: 'pt',
    patch_size: String(config.model.patchSize),
    embed_dim: String(embedDim),
    depth: String(depth),
    num_heads: String(numHeads),
    mlp_ratio: String(config.model.mlpRatio),
    qkv_bias: String(config.model.qkvBias),
    in_chans: String(config.model.inChans),
    img_size: String(config.augment.globalCropSize),
  });
}

/**
 * Backbone parameters (frozen variables under our internal names) from a safetensors file:
 * our own export, a released backbone, or a full teacher/student state dict (`module.` and
 * `backbone.` prefixes are stripped, `head.*` tensors are ignored). Anything missing,
 * mis-shaped or unknown is reported by name. The positional table must have the size the
 * config implies (globalCropSize / patchSize squared, plus [CLS]).
 */
export function importBackbone(bytes: Uint8Array, config: RunConfig): Params {
  const { tensors } = decodeSafetensors(bytes);
  const isHead = (name: string) => /^(module\.)?head\./.test(name);
  const backboneOnly = new Map([...tensors].filter(([name]) => !isHead(name)));
  const shapes = backboneShapes(config);
  let data: Map<string, Float32Array>;
  try {
    data = fromReference(backboneOnly, shapes, { inChans: config.model.inChans });
  } catch (e) {
    throw new Error(`importBackbone: the file does not fit config.model: ${(e as Error).message}`);
  }
  const params: Params = new Map();
  for (const [name, values] of data) {
    const value = tf.tensor(values, shapes.get(name)!, 'float32');
    params.set(name, tf.variable(value, false));
    value.dispose();
  }
  return params;
}
