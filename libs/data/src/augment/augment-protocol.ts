import type { AugmentConfig } from '@dinoq/config';
import type { AugmentedBatch } from './multi-crop';

/** What an augmentation thread starts with: the decoded images in shared memory. */
export interface AugmentThreadData {
  images: SharedArrayBuffer;
  count: number;
  height: number;
  width: number;
  channels: 1 | 3;
}

export interface AugmentRequest {
  id: number;
  indices: number[];
  cfg: AugmentConfig;
  seed: number;
  epoch: number;
}

export interface AugmentDone {
  id: number;
  type: 'done';
  batch: AugmentedBatch;
}

export type AugmentReply = AugmentDone | { id: number; type: 'error'; message: string };
