import * as tf from '@tensorflow/tfjs-core';

/**
 * Parameter groups of the reference optimizer (spec §7.1). Weight decay applies to the
 * "regularized" group only; biases and 1-D tensors (LayerNorm weights and biases) are exempt.
 * Unlike timm's usual rule, pos_embed and cls_token ARE decayed (they are 3-D).
 */

export function isRegularized(name: string, shape: readonly number[]): boolean {
  return !(name.endsWith('.bias') || shape.length === 1);
}

export interface ParamGroups {
  regularized: string[];
  notRegularized: string[];
}

/** A tf.Variable counts when trainable; a plain tensor is treated as trainable. */
export function isTrainable(t: tf.Tensor): boolean {
  return !(t instanceof tf.Variable) || t.trainable;
}

/** Names of the trainable parameters in each group, in the map's order. */
export function paramGroups(params: ReadonlyMap<string, tf.Tensor>): ParamGroups {
  const groups: ParamGroups = { regularized: [], notRegularized: [] };
  for (const [name, t] of params) {
    if (!isTrainable(t)) continue;
    (isRegularized(name, t.shape) ? groups.regularized : groups.notRegularized).push(name);
  }
  return groups;
}

/** The head's weight-normalised last layer (both weight_v and weight_g), per spec §7.4. */
export function isLastLayer(name: string): boolean {
  return name.includes('last_layer');
}

/**
 * Skip rule for the optimizer during the first `freezeLastLayerEpochs` epochs: the last layer
 * is left out of the update entirely (no moments, no step count, no decay). Zeroing its
 * gradient instead would still decay it and move its moments. The reference freezes it for
 * the first epoch because that stabilises early training; raise it when the loss stalls.
 */
export function lastLayerSkip(epoch: number, freezeLastLayerEpochs: number): (name: string) => boolean {
  const frozen = epoch < freezeLastLayerEpochs;
  return (name) => frozen && isLastLayer(name);
}
