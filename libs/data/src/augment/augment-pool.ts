import * as path from 'node:path';
import type { AugmentConfig } from '@dinoq/config';
import { spawnModuleThread, ThreadChannel } from '@dinoq/threads';
import type { AugmentDone, AugmentReply, AugmentRequest, AugmentThreadData } from './augment-protocol';
import { imageBytesOf, type ImageSource } from '../images';
import { checkIndex, type AugmentedBatch } from './multi-crop';

/**
 * The data pipeline's own cores: multi-crop augmentation in worker threads, so batches are
 * prepared while a training step holds the main thread (a step on one replica, or a GPU step
 * driven from JavaScript). The images are copied once into shared memory; each batch is split
 * into contiguous chunks, one per thread, and reassembled in order. Output is bit-identical to
 * `augmentBatch` on the main thread, since every image's draws depend only on (seed, epoch, index).
 */
export class AugmentPool {
  private constructor(
    private readonly source: ImageSource,
    private readonly workers: ThreadChannel<AugmentReply>[],
  ) {}

  static start(source: ImageSource, threads: number): AugmentPool {
    if (!Number.isInteger(threads) || threads < 1)
      throw new Error(`augmentation threads must be a positive integer, got ${threads}`);
    const bytes = imageBytesOf(source);
    const shared = new SharedArrayBuffer(bytes);
    new Uint8Array(shared).set(source.images.subarray(0, bytes));
    const { count, channels } = source;
    // The layout (16 bytes an image) is copied to each thread; the pixels are shared.
    const data: AugmentThreadData = {
      images: shared,
      count,
      channels,
      offsets: source.offsets.slice(0, count),
      heights: source.heights.slice(0, count),
      widths: source.widths.slice(0, count),
    };
    const base = path.join(__dirname, 'augment-thread');
    const workers = Array.from(
      { length: threads },
      (_, i) =>
        new ThreadChannel<AugmentReply>(`augmentation thread ${i}`, spawnModuleThread(base, { ...data })),
    );
    return new AugmentPool(source, workers);
  }

  get threads(): number {
    return this.workers.length;
  }

  /** Same contract as `augmentBatch`; `busyMs` is the threads' summed busy time (core-ms). */
  async augment(
    indices: readonly number[],
    cfg: AugmentConfig,
    options: { seed: number; epoch: number },
  ): Promise<AugmentedBatch> {
    for (const index of indices) checkIndex(this.source, index);
    const chunks = Math.min(this.workers.length, indices.length);
    const parts = await Promise.all(
      Array.from({ length: chunks }, (_, t) => {
        const from = Math.floor((indices.length * t) / chunks);
        const to = Math.floor((indices.length * (t + 1)) / chunks);
        const request: Omit<AugmentRequest, 'id'> = { indices: indices.slice(from, to), cfg, ...options };
        return this.workers[t].request(request).then((reply) => (reply as AugmentDone).batch);
      }),
    );
    if (parts.length === 1) return parts[0];
    const sizes = parts[0].sizes;
    const views = sizes.map((size, v) => {
      const out = new Float32Array(indices.length * size * size * 3);
      let at = 0;
      for (const part of parts) {
        out.set(part.views[v], at);
        at += part.views[v].length;
      }
      return out;
    });
    return { views, sizes, batch: indices.length, busyMs: parts.reduce((ms, p) => ms + p.busyMs, 0) };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
