import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { AugmentConfig } from '@dinoq/config';
import { spawnModuleThread } from '@dinoq/threads';
import type { AugmentReply, AugmentRequest, AugmentThreadData } from './augment-protocol';
import { checkIndex, type AugmentedBatch, type ImageSource } from './multi-crop';

type Pending = { resolve: (b: AugmentedBatch) => void; reject: (e: Error) => void };

class AugmentThread {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private failure: Error | null = null;

  constructor(
    readonly index: number,
    private readonly worker: Worker,
  ) {
    worker.on('message', (reply: AugmentReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.type === 'done') p.resolve(reply.batch);
      else p.reject(new Error(`augmentation thread ${index}: ${reply.message}`));
    });
    worker.on('error', (e) => this.fail(new Error(`augmentation thread ${index} crashed: ${e.message}`)));
    worker.on('exit', (code) =>
      this.fail(new Error(`augmentation thread ${index} exited with code ${code}`)),
    );
  }

  run(request: Omit<AugmentRequest, 'id'>): Promise<AugmentedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id } satisfies AugmentRequest);
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.fail(new Error(`augmentation thread ${this.index} was closed`));
    await this.worker.terminate();
  }
}

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
    private readonly workers: AugmentThread[],
  ) {}

  static start(source: ImageSource, threads: number): AugmentPool {
    if (!Number.isInteger(threads) || threads < 1)
      throw new Error(`augmentation threads must be a positive integer, got ${threads}`);
    const frame = source.height * source.width * source.channels;
    const shared = new SharedArrayBuffer(source.count * frame);
    new Uint8Array(shared).set(source.images.subarray(0, source.count * frame));
    const data: AugmentThreadData = {
      images: shared,
      count: source.count,
      height: source.height,
      width: source.width,
      channels: source.channels,
    };
    const base = path.join(__dirname, 'augment-thread');
    const workers = Array.from(
      { length: threads },
      (_, i) => new AugmentThread(i, spawnModuleThread(base, { ...data })),
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
        return this.workers[t].run({ indices: indices.slice(from, to), cfg, ...options });
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
