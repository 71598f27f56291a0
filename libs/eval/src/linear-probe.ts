import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { normal, rngFor, type ParamTensors } from '@dinoq/dino';
import type { FeatureSet } from './knn';
import type { EvalImages } from './pass-features';
import { extractProbeFeatures } from './probe-features';

/**
 * Linear evaluation of a frozen backbone (spec §12, `eval_linear.py`): one Linear(dim, classes)
 * layer, weight ~ N(0, 0.01), bias 0, trained with SGD (momentum 0.9, no weight decay) at
 * lr · batch / 256, cosine-annealed to 0 over the epochs and stepped once per epoch, under
 * cross-entropy; the best top-1 over epochs is reported, as the reference does.
 *
 * Deviation: the reference trains on RandomResizedCrop + flip views, recomputing the backbone
 * every step. Here features are extracted once, without augmentation, and the classifier trains
 * on those (the "frozen features" shortcut), which costs one backbone pass instead of one per
 * epoch; expect slightly lower accuracy than with augmentation on large datasets.
 */

export interface ProbeEpoch {
  /** 0-based. */
  epoch: number;
  /** Mean cross-entropy over the epoch's training batches. */
  trainLoss: number;
  /** Test accuracy after the epoch, in %. */
  top1: number;
  top5: number;
  /** Learning rate used during the epoch. */
  lr: number;
}

export interface LinearClassifierOptions {
  /** Default: max label + 1 over both sets. */
  numClasses?: number;
  epochs?: number;
  /** Per 256 images (scaled by batchSize / 256). */
  lr?: number;
  batchSize?: number;
  momentum?: number;
  seed?: number;
  onEpoch?: (entry: ProbeEpoch) => void;
}

export interface LinearClassifierResult {
  /** Best top-1 over epochs (%), the reference's reported number. */
  top1: number;
  /** Top-5 at the best-top-1 epoch. */
  top5: number;
  bestEpoch: number;
  finalTop1: number;
  finalTop5: number;
  curve: ProbeEpoch[];
  featureDim: number;
  numClasses: number;
  trainCount: number;
  testCount: number;
}

export interface LinearProbeOptions extends Omit<LinearClassifierOptions, 'numClasses'> {
  /** [CLS] of the last n blocks (spec §12: 4). */
  lastBlocks?: number;
  avgPool?: boolean;
  trainLimit?: number;
  testLimit?: number;
  numClasses?: number;
  /** Images per backbone pass while extracting. */
  extractBatchSize?: number;
}

function numClassesOf(train: FeatureSet, test: FeatureSet, given?: number): number {
  let max = -1;
  for (const [name, set] of [
    ['train', train],
    ['test', test],
  ] as const)
    for (let i = 0; i < set.count; i++) {
      if (set.labels[i] < 0) throw new Error(`linear probe: ${name} image ${i} has no label`);
      max = Math.max(max, set.labels[i]);
    }
  if (given !== undefined && given <= max)
    throw new Error(`linear probe: numClasses ${given} but labels go up to ${max}`);
  return given ?? max + 1;
}

function shuffled(count: number, rng: () => number): Int32Array {
  const order = Int32Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Top-1 / top-5 accuracy (%) of `x·W + b` on a feature set, in chunks. */
function accuracy(
  x: tf.Tensor2D,
  labels: Int32Array,
  w: tf.Tensor2D,
  b: tf.Tensor1D,
  numClasses: number,
): { top1: number; top5: number } {
  const k = Math.min(5, numClasses);
  const chunk = 4096;
  let hits1 = 0;
  let hits5 = 0;
  const count = x.shape[0];
  for (let start = 0; start < count; start += chunk) {
    const rows = Math.min(chunk, count - start);
    const top = tf.tidy(() => {
      const logits = tf.add(tf.matMul(tf.slice(x, [start, 0], [rows, x.shape[1]]), w), b);
      return tf.topk(logits, k, true).indices.dataSync() as Int32Array;
    });
    for (let r = 0; r < rows; r++) {
      const truth = labels[start + r];
      if (top[r * k] === truth) hits1++;
      for (let j = 0; j < k; j++) if (top[r * k + j] === truth) hits5++;
    }
  }
  return { top1: (100 * hits1) / count, top5: (100 * hits5) / count };
}

/**
 * Softmax cross-entropy of `x·W + b` and its gradients, written out rather than taken by
 * autodiff: dL/dlogits = (softmax − onehot) / rows, so dW = xᵀ·that and db = its column sum.
 * `lossSum` is summed over rows; the gradients are those of the mean.
 */
export function crossEntropyGradients(
  x: tf.Tensor2D,
  onehot: tf.Tensor2D,
  w: tf.Tensor2D,
  b: tf.Tensor1D,
): { lossSum: tf.Scalar; gradW: tf.Tensor2D; gradB: tf.Tensor1D } {
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(tf.add(tf.matMul(x, w), b) as tf.Tensor2D);
    const dLogits = tf.div(tf.sub(tf.exp(logProbs), onehot), x.shape[0]) as tf.Tensor2D;
    return {
      lossSum: tf.neg(tf.sum(tf.mul(onehot, logProbs))) as tf.Scalar,
      gradW: tf.matMul(x, dLogits, true, false),
      gradB: tf.sum(dLogits, 0) as tf.Tensor1D,
    };
  });
}

/**
 * Trains the linear classifier on precomputed features and evaluates it on `test` after every
 * epoch.
 */
export async function trainLinearClassifier(
  train: FeatureSet,
  test: FeatureSet,
  opts: LinearClassifierOptions = {},
): Promise<LinearClassifierResult> {
  if (train.dim !== test.dim) throw new Error(`linear probe: train dim ${train.dim} ≠ test dim ${test.dim}`);
  if (train.count === 0 || test.count === 0) throw new Error('linear probe: empty train or test set');
  const numClasses = numClassesOf(train, test, opts.numClasses);
  const epochs = opts.epochs ?? 100;
  const batchSize = opts.batchSize ?? 128;
  const momentum = opts.momentum ?? 0.9;
  const seed = opts.seed ?? 0;
  const baseLr = ((opts.lr ?? 0.001) * batchSize) / 256;
  const dim = train.dim;

  const initRng = rngFor(seed, 'linear-probe/init');
  const w0 = Float32Array.from({ length: dim * numClasses }, () => 0.01 * normal(initRng));
  let w = tf.tensor2d(w0, [dim, numClasses]);
  let b = tf.zeros([numClasses]) as tf.Tensor1D;
  let velocityW = tf.zerosLike(w);
  let velocityB = tf.zerosLike(b);
  const xTrain = tf.tensor2d(train.features, [train.count, dim]);
  const yTrain = tf.tensor1d(train.labels, 'int32');
  const xTest = tf.tensor2d(test.features, [test.count, dim]);
  const curve: ProbeEpoch[] = [];
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      // CosineAnnealingLR(T_max = epochs, eta_min = 0), stepped after each epoch.
      const lr = (baseLr * (1 + Math.cos((Math.PI * epoch) / epochs))) / 2;
      const order = shuffled(train.count, rngFor(seed, 'linear-probe/order', epoch));
      let lossSum = tf.scalar(0);
      for (let start = 0; start < train.count; start += batchSize) {
        const idx = tf.tensor1d(order.subarray(start, Math.min(start + batchSize, train.count)), 'int32');
        const next = tf.tidy(() => {
          const x = tf.gather(xTrain, idx);
          // int32 then cast: the wasm OneHot kernel (tfjs 4.22) writes int32 bit patterns even
          // when asked for float32, which turns every 1 into a denormal.
          const onehot = tf.cast(tf.oneHot(tf.gather(yTrain, idx), numClasses), 'float32') as tf.Tensor2D;
          const { lossSum: batchLoss, gradW, gradB } = crossEntropyGradients(x, onehot, w, b);
          // PyTorch SGD: v ← μ·v + g; θ ← θ − lr·v (no dampening, no Nesterov, weight decay 0).
          const vW = tf.add(tf.mul(velocityW, momentum), gradW) as tf.Tensor2D;
          const vB = tf.add(tf.mul(velocityB, momentum), gradB) as tf.Tensor1D;
          return {
            w: tf.sub(w, tf.mul(vW, lr)) as tf.Tensor2D,
            b: tf.sub(b, tf.mul(vB, lr)) as tf.Tensor1D,
            vW,
            vB,
            loss: tf.add(lossSum, batchLoss) as tf.Scalar,
          };
        });
        idx.dispose();
        [w, b, velocityW, velocityB, lossSum].forEach((t) => t.dispose());
        ({ w, b, vW: velocityW, vB: velocityB, loss: lossSum } = next);
      }
      const trainLoss = (await lossSum.data())[0] / train.count;
      lossSum.dispose();
      const { top1, top5 } = accuracy(xTest, test.labels, w, b, numClasses);
      const entry = { epoch, trainLoss, top1, top5, lr };
      curve.push(entry);
      opts.onEpoch?.(entry);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    [w, b, velocityW, velocityB, xTrain, yTrain, xTest].forEach((t) => t.dispose());
  }
  const best = curve.reduce((bi, e, i) => (e.top1 > curve[bi].top1 ? i : bi), 0);
  const last = curve[curve.length - 1];
  return {
    top1: curve[best]?.top1 ?? 0,
    top5: curve[best]?.top5 ?? 0,
    bestEpoch: curve[best]?.epoch ?? -1,
    finalTop1: last?.top1 ?? 0,
    finalTop5: last?.top5 ?? 0,
    curve,
    featureDim: dim,
    numClasses,
    trainCount: train.count,
    testCount: test.count,
  };
}

/**
 * The full probe: features of `train` and `test` from the frozen backbone (extracted once),
 * then `trainLinearClassifier`.
 */
export async function linearProbe(
  params: ParamTensors,
  config: RunConfig,
  train: EvalImages,
  test: EvalImages,
  opts: LinearProbeOptions = {},
): Promise<LinearClassifierResult> {
  const extract = (images: EvalImages, limit?: number) =>
    extractProbeFeatures(params, images, {
      config,
      lastBlocks: opts.lastBlocks ?? 4,
      avgPool: opts.avgPool ?? false,
      batchSize: opts.extractBatchSize,
      limit,
    });
  const trainFeatures = await extract(train, opts.trainLimit);
  const testFeatures = await extract(test, opts.testLimit);
  return trainLinearClassifier(trainFeatures, testFeatures, opts);
}
