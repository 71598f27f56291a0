import { parentPort } from 'node:worker_threads';
import type { KeyedAugmentReply, KeyedAugmentRequest } from './augment-protocol';
import { augmentKeyedBatch } from './keyed-augment';

/** One streaming augmentation thread: multi-crop of the images each request brings. */

parentPort!.on('message', (msg: KeyedAugmentRequest) => {
  const { channels, offsets, heights, widths } = msg;
  const images = {
    images: new Uint8Array(msg.images),
    count: msg.keys.length,
    channels,
    offsets,
    heights,
    widths,
  };
  augmentKeyedBatch(images, msg.keys, msg.cfg, { seed: msg.seed, epoch: msg.epoch }).then(
    (batch) => {
      const reply: KeyedAugmentReply = { id: msg.id, type: 'done', batch };
      parentPort!.postMessage(
        reply,
        batch.views.map((v) => v.buffer as ArrayBuffer),
      );
    },
    (error: unknown) => {
      const reply: KeyedAugmentReply = {
        id: msg.id,
        type: 'error',
        message: error instanceof Error ? error.message : String(error),
      };
      parentPort!.postMessage(reply);
    },
  );
});
