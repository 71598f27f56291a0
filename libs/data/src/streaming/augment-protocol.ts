import type { AugmentConfig } from '@dinoq/config';
import type { AugmentedBatch } from '../augment/multi-crop';

/** A part of a streamed batch sent to an augmentation thread: its images travel with the request. */
export interface KeyedAugmentRequest {
  id: number;
  /** `keys.length` images back to back, batch order, laid out by the fields below (images.ts). */
  images: ArrayBuffer;
  channels: 1 | 3;
  offsets: Float64Array;
  heights: Uint32Array;
  widths: Uint32Array;
  keys: number[];
  cfg: AugmentConfig;
  seed: number;
  epoch: number;
}

export type KeyedAugmentReply =
  { id: number; type: 'done'; batch: AugmentedBatch } | { id: number; type: 'error'; message: string };
