import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { decodeCheckpoint } from './checkpoint';
import { paramShapes } from './init';

/** One network of a checkpoint as plain tensors; dispose them with `disposeParams`. */
export function networkParams(
  config: RunConfig,
  files: Record<string, Uint8Array>,
  network: 'teacher' | 'student',
): Map<string, tf.Tensor> {
  const shapes = paramShapes(config);
  const decoded = decodeCheckpoint(files, shapes);
  const values = network === 'teacher' ? decoded.teacher : decoded.student;
  const params = new Map<string, tf.Tensor>();
  for (const [name, shape] of shapes) {
    const data = values.get(name);
    if (!data) throw new Error(`checkpoint ${network} has no tensor "${name}"`);
    params.set(name, tf.tensor(data, shape, 'float32'));
  }
  return params;
}
