import type { RunConfig } from '@dinoq/config';
import type { CropBatch, StepHyper, StepLane } from '../step-types';
import type { BackendInfo } from '../backend/select-backend';
import type { MicroBatch } from '../grad-step';

/**
 * Messages between the coordinating thread and its replica workers. Each request carries an id
 * that its reply repeats; a worker handles one request at a time, in order.
 */

export interface ReplicaInit {
  config: RunConfig;
  datasetSize: number;
  /** Checkpoint blobs to resume from; absent for a fresh run. */
  files?: Record<string, Uint8Array>;
  /** The steps to train (a slice's lane); absent for every step from the checkpoint's. */
  lane?: StepLane;
  /** Backend for `selectBackend` (default: automatic). */
  backend?: string;
  /** OpenBLAS threads in this process when native kernels load. */
  blasThreads: number;
}

export type ReplicaRequest =
  | { id: number; type: 'init'; init: ReplicaInit }
  | {
      id: number;
      type: 'gradients';
      /** This replica's rows of the batch only. */
      batch: CropBatch;
      /** Row ranges of `batch`, with their indices in the whole batch's micro-batch list. */
      micros: MicroBatch[];
      totalBatch: number;
      hyper: StepHyper;
    }
  | {
      id: number;
      type: 'apply';
      /** Whole-batch gradient sum, parameters concatenated in the order `names` of the gradients reply. */
      grads: Float32Array;
      names: string[];
      teacherSum: Float32Array;
      totalBatch: number;
      hyper: StepHyper;
    }
  | { id: number; type: 'checkpoint' }
  | { id: number; type: 'checksum' };

/** A request before the handle numbers it. */
export type ReplicaRequestBody = ReplicaRequest extends infer R
  ? R extends unknown
    ? Omit<R, 'id'>
    : never
  : never;

export type ReplicaReply =
  | { id: number; type: 'ready'; backend: BackendInfo; step: number; stride: number }
  | {
      id: number;
      type: 'gradients';
      grads: Float32Array;
      names: string[];
      teacherSum: Float32Array;
      loss: number;
      teacherEntropy: number;
      klTeacherStudent: number;
      /** Forward + backward time in the replica. */
      computeMs: number;
      /** Copying the gradients out of the tensors into the reply. */
      packMs: number;
    }
  | { id: number; type: 'applied'; maxGradNorm: number; step: number; numTensors: number; applyMs: number }
  | { id: number; type: 'checkpoint'; files: Record<string, Uint8Array> }
  | { id: number; type: 'checksum'; checksum: string }
  | { id: number; type: 'error'; message: string; stack?: string };
