import type { AugmentConfig } from '@dinoq/config';
import type { AugmentedBatch } from '../augment/multi-crop';

/** A part of a streamed batch sent to an augmentation thread: its images travel with the request. */
export interface KeyedAugmentRequest {
  id: number;
  /** `keys.length` images, height × width × channels bytes each, batch order. */
  images: ArrayBuffer;
  height: number;
  width: number;
  channels: 1 | 3;
  keys: number[];
  cfg: AugmentConfig;
  seed: number;
  epoch: number;
}

export type KeyedAugmentReply =
  { id: number; type: 'done'; batch: AugmentedBatch } | { id: number; type: 'error'; message: string };
