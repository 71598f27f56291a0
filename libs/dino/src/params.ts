import * as tf from '@tensorflow/tfjs-core';

/**
 * Parameters of one network (student or teacher), keyed by name.
 *
 * Names follow the reference implementation (spec §2.8) with the `backbone.` / `head.`
 * prefixes of its multi-crop wrapper, but layouts are chosen for the fast matmul path:
 *
 * | internal name                          | internal shape  | reference name / layout                     |
 * |----------------------------------------|-----------------|---------------------------------------------|
 * | backbone.cls_token                     | [1, 1, D]       | same                                        |
 * | backbone.pos_embed                     | [1, N+1, D]     | same                                        |
 * | backbone.patch_embed.proj.weight       | [p·p·C, D]      | [D, C, p, p]; rows ordered (py, px, c)      |
 * | backbone.patch_embed.proj.bias         | [D]             | same                                        |
 * | backbone.blocks.i.norm1.{weight,bias}  | [D]             | same                                        |
 * | backbone.blocks.i.attn.{q,k,v}.weight  | [D, D] in×out   | fused attn.qkv.weight [3D, D] out×in        |
 * | backbone.blocks.i.attn.{q,k,v}.bias    | [D]             | fused attn.qkv.bias [3D]                    |
 * | backbone.blocks.i.attn.proj.weight     | [D, D] in×out   | [D, D] out×in                               |
 * | backbone.blocks.i.mlp.fc1.weight       | [D, 4D] in×out  | [4D, D] out×in                              |
 * | backbone.blocks.i.mlp.fc2.weight       | [4D, D] in×out  | [D, 4D] out×in                              |
 * | backbone.norm.{weight,bias}            | [D]             | same                                        |
 * | head.mlp.{0,2,4}.weight                | in×out          | out×in (`head.mlp.weight` when nlayers = 1) |
 * | head.last_layer.weight_v               | [bottleneck, K] | [K, bottleneck]                             |
 * | head.last_layer.weight_g               | [K, 1]          | same                                        |
 *
 * Separate q/k/v weights avoid `split` (which copies whole tensors on wasm) and keep every
 * linear a plain [tokens, in] × [in, out] product. Conversion to and from the reference
 * layout lives in `reference-names.ts`.
 */
export type Params = Map<string, tf.Variable>;

/** Read-only view used by forward passes: any tensor will do (variables, or plain tensors in tests). */
export type ParamTensors = ReadonlyMap<string, tf.Tensor>;

export function getParam(params: ParamTensors, name: string): tf.Tensor {
  const t = params.get(name);
  if (!t) throw new Error(`missing parameter "${name}"`);
  return t;
}

export function disposeParams(params: Map<string, tf.Tensor>): void {
  for (const v of params.values()) v.dispose();
  params.clear();
}
