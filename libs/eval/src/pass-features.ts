import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { evalTransform, heldPass, type DecodedSplit, type SplitPass } from '@dinoq/data';
import type { FeatureSet } from './knn';

/** Images to evaluate: a split held decoded in memory, or a pass that streams it (libs/data split-pass). */
export type EvalImages = DecodedSplit | SplitPass;

export function asSplitPass(images: EvalImages): SplitPass {
  return 'batches' in images ? images : heldPass(images);
}

export interface PassFeatureOptions {
  config: RunConfig;
  /** Images per forward pass. */
  batchSize?: number;
  /** Only the first `limit` samples. */
  limit?: number;
  /** Samples read so far and in all (unusable ones included). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * One feature row per usable image of the pass, in sample order: `forward` maps a batch of
 * eval-transformed images (NHWC, the global-crop size) to its rows. Only the rows are kept, so
 * a streamed split's features take N × dim floats whatever its decoded size.
 */
export async function passFeatures(
  images: EvalImages,
  opts: PassFeatureOptions,
  forward: (x: tf.Tensor4D) => tf.Tensor2D,
): Promise<FeatureSet> {
  const pass = asSplitPass(images);
  const { mean, std, globalCropSize: size } = opts.config.augment;
  const total = Math.min(opts.limit ?? pass.samples, pass.samples);
  const rows = new FeatureRows(total);
  for await (const batch of pass.batches(opts.batchSize ?? 128, opts.limit)) {
    const pixels = evalTransform(batch.images, batch.positions, size, mean, std, pass.cropFraction);
    const out = tf.tidy(() => {
      const x = tf.tensor4d(pixels, [batch.positions.length, size, size, 3]);
      return forward(x).dataSync() as Float32Array;
    });
    rows.add(out, batch.labels);
    opts.onProgress?.(batch.samplesRead, total);
    // Lets the process answer (progress, an abandon request) between batches.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return rows.finish();
}

/** Feature rows appended batch by batch, room made for every sample; trimmed where some were skipped. */
class FeatureRows {
  private features: Float32Array | null = null;
  private readonly labels: Int32Array;
  private count = 0;
  private dim = 0;

  constructor(private readonly capacity: number) {
    this.labels = new Int32Array(capacity);
  }

  add(rows: Float32Array, labels: Int32Array): void {
    if (labels.length === 0) return;
    if (this.count + labels.length > this.capacity)
      throw new Error(`feature rows: more than the ${this.capacity} samples of the pass`);
    if (this.features === null) {
      this.dim = rows.length / labels.length;
      this.features = new Float32Array(this.capacity * this.dim);
    }
    this.features.set(rows, this.count * this.dim);
    this.labels.set(labels, this.count);
    this.count += labels.length;
  }

  finish(): FeatureSet {
    const { count, dim } = this;
    const full = count === this.capacity;
    return {
      features:
        this.features === null
          ? new Float32Array(0)
          : full
            ? this.features
            : this.features.slice(0, count * dim),
      labels: full ? this.labels : this.labels.slice(0, count),
      count,
      dim,
    };
  }
}
