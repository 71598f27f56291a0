import * as path from 'node:path';
import type { AugmentConfig } from '@dinoq/config';
import { spawnModuleThread, ThreadChannel } from '@dinoq/threads';
import type { AugmentedBatch } from '../augment/multi-crop';
import { imageBytesOf, type ImageSource } from '../images';
import type { KeyedAugmentReply, KeyedAugmentRequest } from './augment-protocol';
import { augmentKeyedBatch } from './keyed-augment';

/**
 * Multi-crop of streamed batches in worker threads. Unlike AugmentPool, whose threads hold a whole
 * decoded split in shared memory, nothing is resident here: each batch is split into contiguous
 * parts, one per thread, and each part's decoded images and their sizes are copied into the
 * request (a batch of 256 images of 64×64×3 is 3 MB). Output is bit-identical to `augmentKeyedBatch` on this thread.
 */
export class StreamingAugmentPool {
  private constructor(private readonly workers: ThreadChannel<KeyedAugmentReply>[]) {}

  static start(threads: number): StreamingAugmentPool {
    if (!Number.isInteger(threads) || threads < 1)
      throw new Error(`augmentation threads must be a positive integer, got ${threads}`);
    const base = path.join(__dirname, 'augment-thread');
    const workers = Array.from(
      { length: threads },
      (_, i) =>
        new ThreadChannel<KeyedAugmentReply>(`streaming augmentation thread ${i}`, spawnModuleThread(base)),
    );
    return new StreamingAugmentPool(workers);
  }

  get threads(): number {
    return this.workers.length;
  }

  /** Same contract as `augmentKeyedBatch`; `busyMs` is the threads' summed busy time (core-ms). */
  async augment(
    images: ImageSource,
    keys: readonly number[],
    cfg: AugmentConfig,
    options: { seed: number; epoch: number },
  ): Promise<AugmentedBatch> {
    if (keys.length !== images.count)
      throw new Error(`augmentation keys: ${keys.length} keys for ${images.count} images`);
    const parts = Math.min(this.workers.length, keys.length);
    const done = await Promise.all(
      Array.from({ length: parts }, (_, t) => {
        const from = Math.floor((keys.length * t) / parts);
        const to = Math.floor((keys.length * (t + 1)) / parts);
        const start = images.offsets[from];
        const bytes = images.images.slice(start, imageBytesOf(images, to));
        const request: Omit<KeyedAugmentRequest, 'id'> = {
          images: bytes.buffer,
          channels: images.channels,
          offsets: images.offsets.slice(from, to).map((offset) => offset - start),
          heights: images.heights.slice(from, to),
          widths: images.widths.slice(from, to),
          keys: keys.slice(from, to),
          cfg,
          ...options,
        };
        return this.workers[t].request(request, [bytes.buffer]).then((reply) => {
          if (reply.type !== 'done') throw new Error(`unexpected reply ${reply.type}`);
          return reply.batch;
        });
      }),
    );
    if (done.length === 0) return augmentKeyedBatch(images, keys, cfg, options);
    if (done.length === 1) return done[0];
    const sizes = done[0].sizes;
    const views = sizes.map((size, v) => {
      const out = new Float32Array(keys.length * size * size * 3);
      let at = 0;
      for (const part of done) {
        out.set(part.views[v], at);
        at += part.views[v].length;
      }
      return out;
    });
    return { views, sizes, batch: keys.length, busyMs: done.reduce((ms, p) => ms + p.busyMs, 0) };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
