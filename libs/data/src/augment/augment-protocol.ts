import type { AugmentConfig } from '@dinoq/config';
import type { ImageSource } from '../images';
import type { AugmentedBatch } from './multi-crop';

/** What an augmentation thread starts with: the decoded images in shared memory, and their layout. */
export interface AugmentThreadData extends Omit<ImageSource, 'images'> {
  images: SharedArrayBuffer;
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
