import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { decodeCheckpointNetwork, type NetworkRole } from './checkpoint';
import { paramShapes } from './init';

/**
 * One network of a checkpoint as plain tensors; dispose them with `disposeParams`. Only that
 * network's file (`networkFileName(network)`) has to be in `files`.
 */
export function networkParams(
  config: RunConfig,
  files: Record<string, Uint8Array>,
  network: NetworkRole,
): Map<string, tf.Tensor> {
  const shapes = paramShapes(config);
  const values = decodeCheckpointNetwork(files, network, shapes);
  const params = new Map<string, tf.Tensor>();
  for (const [name, shape] of shapes) {
    const data = values.get(name);
    if (!data) throw new Error(`checkpoint ${network} has no tensor "${name}"`);
    params.set(name, tf.tensor(data, shape, 'float32'));
  }
  return params;
}
