import * as tf from '@tensorflow/tfjs-core';

/**
 * Parameter groups of the reference optimizer (spec §7.1). Weight decay applies to the
 * "regularized" group only; biases and 1-D tensors (LayerNorm weights and biases) are exempt.
 * Unlike timm's usual rule, pos_embed and cls_token ARE decayed (they are 3-D).
 */

export function isRegularized(name: string, shape: readonly number[]): boolean {
  return !(name.endsWith('.bias') || shape.length === 1);
}

/** A tf.Variable counts when trainable; a plain tensor is treated as trainable. */
export function isTrainable(t: tf.Tensor): boolean {
  return !(t instanceof tf.Variable) || t.trainable;
}

/** The head's weight-normalised last layer (both weight_v and weight_g), per spec §7.4. */
export function isLastLayer(name: string): boolean {
  return name.includes('last_layer');
}
