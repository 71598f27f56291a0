import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import type { ParamTensors } from './params';
import { vitForward, type VitOptions } from './vit/vit';
import { dinoHead } from './head';
import { concatRows } from './layers/structural';

export interface MultiCropOptions extends Omit<VitOptions, 'config' | 'cropGroup'> {
  config: Pick<RunConfig, 'model' | 'head'>;
}

/** Runs of consecutive crops with the same H×W: [start, end) indices into the crop list. */
export function cropGroups(crops: readonly tf.Tensor4D[]): Array<[number, number]> {
  const groups: Array<[number, number]> = [];
  crops.forEach((c, i) => {
    const last = groups[groups.length - 1];
    const prev = last && crops[last[0]];
    if (prev && prev.shape[1] === c.shape[1] && prev.shape[2] === c.shape[2]) last[1] = i + 1;
    else groups.push([i, i + 1]);
  });
  return groups;
}

function checkCrops(crops: readonly tf.Tensor4D[]): void {
  if (crops.length === 0) throw new Error('multiCropForward: no crops');
  const [batch, , , channels] = crops[0].shape;
  crops.forEach((c, i) => {
    if (c.rank !== 4) throw new Error(`crop ${i} must be NHWC [B, H, W, C], got [${c.shape}]`);
    if (c.shape[0] !== batch || c.shape[3] !== channels) {
      throw new Error(`crop ${i} is [${c.shape}], crop 0 has batch ${batch} and ${channels} channels`);
    }
  });
}

/**
 * Backbone + head over an ordered list of crops (spec §4). Consecutive crops of equal size
 * share one backbone call (concatenated on the batch axis); the head runs once on all
 * features. Logits are `[numCrops·B, K]` in crop order: [crop 0 batch | crop 1 batch | …].
 */
export function multiCropForward(
  params: ParamTensors,
  crops: readonly tf.Tensor4D[],
  opts: MultiCropOptions,
): tf.Tensor2D {
  checkCrops(crops);
  return tf.tidy(() => {
    const features = cropGroups(crops).map(([start, end], group) => {
      const members = crops.slice(start, end);
      const images = members.length === 1 ? members[0] : tf.concat(members, 0);
      return vitForward(params, images, { ...opts, cropGroup: group });
    });
    const all = concatRows(features);
    return dinoHead(params, all, opts);
  });
}
