import { parentPort, workerData } from 'node:worker_threads';
import type { AugmentConfig } from '@dinoq/config';
import type { ImageSource } from '../images';
import { augmentBatch } from './multi-crop';
import type { AugmentReply, AugmentRequest, AugmentThreadData } from './augment-protocol';

/** One data-pipeline thread: multi-crop augmentation of the images it is told, from shared memory. */

const data = workerData as AugmentThreadData;
const source: ImageSource = { ...data, images: new Uint8Array(data.images) };

parentPort!.on('message', (msg: AugmentRequest) => {
  augmentBatch(source, msg.indices, msg.cfg as AugmentConfig, { seed: msg.seed, epoch: msg.epoch }).then(
    (batch) => {
      const reply: AugmentReply = { id: msg.id, type: 'done', batch };
      parentPort!.postMessage(
        reply,
        batch.views.map((v) => v.buffer as ArrayBuffer),
      );
    },
    (error: unknown) => {
      const reply: AugmentReply = {
        id: msg.id,
        type: 'error',
        message: error instanceof Error ? error.message : String(error),
      };
      parentPort!.postMessage(reply);
    },
  );
});
