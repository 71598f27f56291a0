import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { disposeParams, initDinoParams, type Params } from '@dinoq/dino';
import { isBlobNotFound, type FeatureBlobStore } from './feature-cache';
import { extractFeatures } from './features';
import { weightedKnn, type FeatureSet, type KnnOptions, type KnnScore } from './knn';
import { trainLinearClassifier, type LinearProbeOptions } from './linear-probe';
import { extractProbeFeatures } from './probe-features';
import { passFeatures, type EvalImages, type PassFeatureOptions } from './pass-features';

/*
 * The two baselines a trained score is read against (spec §11 protocol for both): the same
 * architecture straight from its seeded initialisation (what training starts from), and the raw
 * pixels of the very crops the network sees. A score below the random network means training
 * hurt; a score below raw pixels means the features are not yet better than the input.
 */

/** The network a run starts from: its architecture, initialised from its seed as training does. */
export function randomInitParams(config: RunConfig): Params {
  return initDinoParams(config, config.train.seed);
}

/**
 * Raw-pixel features of the eval crops (centred, resized to the global-crop size, as the network
 * sees them), in [0, 1] rather than normalised: each row is the crop's pixels / 255, so square
 * images already at the crop size give exactly their stored pixels. Held and streamed splits, and
 * images of their own sizes, all work.
 */
export function rawPixelCropFeatures(images: EvalImages, opts: PassFeatureOptions) {
  const { mean, std } = opts.config.augment;
  return passFeatures(images, opts, (x) =>
    tf.tidy(() => {
      const pixels = tf.add(tf.mul(x, tf.tensor1d([...std])), tf.tensor1d([...mean]));
      return tf.reshape(pixels, [x.shape[0], -1]) as tf.Tensor2D;
    }),
  );
}

export type BaselineName = 'randomInit' | 'rawPixels';

export interface ProbeScore {
  top1: number;
  top5: number;
}

export interface KnnBaselines {
  randomInit: KnnScore[];
  rawPixels: KnnScore[];
}

/** Where the baseline images come from: a split opened afresh for each pass (a stream is read once). */
export interface BaselineSplits {
  train: () => Promise<EvalImages>;
  test: () => Promise<EvalImages>;
}

/** A feature extractor: rows for the first `limit` usable images. */
export type FeatureExtractor = (images: EvalImages, limit?: number) => Promise<FeatureSet>;

export interface BaselineFeatureOptions extends Omit<PassFeatureOptions, 'limit'> {
  /** Linear-probe features of the random network ([CLS] of the last blocks, spec §12); k-NN features without. */
  probe?: { lastBlocks: number; avgPool: boolean };
}

/**
 * Runs `use` with one baseline's extractor: the random network's features (k-NN: final [CLS];
 * probe: the probe's blocks and pooling) or the crops' raw pixels. The network is freed after.
 */
export async function withBaselineFeatures<T>(
  which: BaselineName,
  opts: BaselineFeatureOptions,
  use: (extract: FeatureExtractor) => Promise<T>,
): Promise<T> {
  const { probe, ...pass } = opts;
  if (which === 'rawPixels') return use((images, limit) => rawPixelCropFeatures(images, { ...pass, limit }));
  const params = randomInitParams(opts.config);
  try {
    return await use((images, limit) =>
      probe
        ? extractProbeFeatures(params, images, { ...pass, ...probe, limit })
        : extractFeatures(params, images, { ...pass, limit }),
    );
  } finally {
    disposeParams(params);
  }
}

export interface KnnBaselineOptions extends Omit<KnnOptions, 'chunkSize' | 'bankChunkSize'> {
  trainLimit?: number;
  testLimit?: number;
}

/** Weighted k-NN with `extract`'s features: the first `trainLimit` train images as the bank. */
export async function knnWith(
  extract: FeatureExtractor,
  splits: BaselineSplits,
  opts: KnnBaselineOptions,
): Promise<KnnScore[]> {
  const bank = await extract(await splits.train(), opts.trainLimit);
  const queries = await extract(await splits.test(), opts.testLimit);
  return weightedKnn(bank, queries, opts);
}

/** The linear probe's best top-1 (and top-5 there) on `extract`'s features. */
export async function probeWith(
  extract: FeatureExtractor,
  splits: BaselineSplits,
  opts: Omit<LinearProbeOptions, 'lastBlocks' | 'avgPool' | 'extractBatchSize'>,
): Promise<ProbeScore> {
  const train = await extract(await splits.train(), opts.trainLimit);
  const test = await extract(await splits.test(), opts.testLimit);
  const { top1, top5 } = await trainLinearClassifier(train, test, opts);
  return { top1, top5 };
}

/** Weighted k-NN of the random network and of raw pixels on the given bank and queries. */
export async function knnBaselines(
  config: RunConfig,
  splits: BaselineSplits,
  opts: KnnBaselineOptions,
  pass: Omit<PassFeatureOptions, 'config' | 'limit'> = {},
): Promise<KnnBaselines> {
  const scores = (which: BaselineName) =>
    withBaselineFeatures(which, { ...pass, config }, (extract) => knnWith(extract, splits, opts));
  return { randomInit: await scores('randomInit'), rawPixels: await scores('rawPixels') };
}

/** What a stored baseline was computed under; a different protocol under the same key means recompute. */
export type BaselineProtocol = Record<string, unknown>;

function storedScores<T>(bytes: Uint8Array, protocol: BaselineProtocol): T | undefined {
  try {
    const stored = JSON.parse(new TextDecoder().decode(bytes)) as { protocol?: unknown; scores?: T };
    return JSON.stringify(stored.protocol) === JSON.stringify(protocol) ? stored.scores : undefined;
  } catch {
    // Unreadable (cut short, or written by something else): recomputed by the caller.
    return undefined;
  }
}

/**
 * Baseline scores under `key` when they were stored for the same `protocol`; otherwise `compute()`
 * runs and its result is stored as `{protocol, scores}`. Baselines depend only on the dataset and
 * the protocol (and, for the random network, the architecture and seed), so every evaluation of
 * every run on that dataset shares them. The key is libs/storage's baselineKey.
 */
export async function cachedBaselines<T>(
  store: FeatureBlobStore,
  key: string,
  protocol: BaselineProtocol,
  compute: () => Promise<T>,
): Promise<{ scores: T; hit: boolean }> {
  try {
    const scores = storedScores<T>(await store.get(key), protocol);
    if (scores !== undefined) return { scores, hit: true };
  } catch (err) {
    if (!isBlobNotFound(err)) throw err;
  }
  const scores = await compute();
  await store.put(key, new TextEncoder().encode(JSON.stringify({ protocol, scores }, null, 2) + '\n'));
  return { scores, hit: false };
}
