import type * as tf from '@tensorflow/tfjs-core';
import { getParam, type ParamTensors } from '../params';
import { linear } from '../layers/linear';
import { gelu, type GeluKind } from '../layers/gelu';

/** fc1 → GELU → fc2 of block `prefix` (e.g. `backbone.blocks.3.mlp`); dropout is 0 in DINO. */
export function mlp(params: ParamTensors, prefix: string, x: tf.Tensor2D, geluKind: GeluKind): tf.Tensor2D {
  const hidden = linear(
    x,
    getParam(params, `${prefix}.fc1.weight`) as tf.Tensor2D,
    getParam(params, `${prefix}.fc1.bias`) as tf.Tensor1D,
  );
  return linear(
    gelu(hidden, geluKind),
    getParam(params, `${prefix}.fc2.weight`) as tf.Tensor2D,
    getParam(params, `${prefix}.fc2.bias`) as tf.Tensor1D,
  );
}
