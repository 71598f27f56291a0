import * as tf from '@tensorflow/tfjs-core';
import type { RunConfig } from '@dinoq/config';
import { multiCropForward } from './multi-crop';
import { dinoLoss } from './loss';
import { updateCenter } from './center';
import { teacherEntropy, teacherStudentKl } from './diagnostics';
import { clipGradients } from './optim/clip';
import type { AdamW } from './optim/adamw';
import { emaUpdate } from './ema';
import type { Params } from './params';

/** One multi-crop batch: views ordered global1, global2, local1..N; each NHWC [batch, size, size, C]. */
export interface CropBatch {
  views: Float32Array[];
  sizes: number[];
  batch: number;
  channels?: number;
}

/** Hyper-parameters of this iteration, read from the precomputed schedules. */
export interface StepHyper {
  lr: number;
  weightDecay: number;
  momentum: number;
  teacherTemp: number;
  freezeLastLayer: boolean;
}

export interface StepResult {
  loss: number;
  teacherEntropy: number;
  klTeacherStudent: number;
  /** Largest per-tensor gradient norm before clipping. */
  maxGradNorm: number;
}

export class NonFiniteLossError extends Error {
  constructor(
    readonly step: number,
    readonly value: number,
  ) {
    super(
      `loss is ${value} at step ${step}; the run is stopped and no parameter was updated. ` +
        'Lower optim.lr, lower loss.teacherTemp or raise optim.freezeLastLayer (spec §19).',
    );
    this.name = 'NonFiniteLossError';
  }
}

export interface TrainState {
  config: RunConfig;
  student: Params;
  teacher: Params;
  optimizer: AdamW;
  /** Teacher-logit EMA center, [1, K]; replaced (old one disposed) after every step. */
  center: tf.Tensor2D;
  step: number;
}

function viewSlice(batch: CropBatch, view: number, start: number, rows: number): tf.Tensor4D {
  const s = batch.sizes[view];
  const c = batch.channels ?? 3;
  const per = s * s * c;
  return tf.tensor4d(batch.views[view].subarray(start * per, (start + rows) * per), [rows, s, s, c]);
}

/**
 * One DINO iteration (spec §1, §7.5) with gradient accumulation over micro-batches.
 *
 * The loss is a mean of per-image terms and, within a step, the teacher and the center are
 * constants, so summing micro-batch gradients each weighted by rows/batch gives exactly the
 * full-batch gradient; the center is updated once from the teacher-logit sum over the whole
 * batch. Nothing is written to any parameter before the loss of the whole batch is known
 * finite, so a NaN leaves the state as it was.
 */
export function trainStep(state: TrainState, batch: CropBatch, hyper: StepHyper): StepResult {
  const { config } = state;
  const numViews = batch.views.length;
  const B = batch.batch;
  const micro = config.train.microBatchSize > 0 ? Math.min(config.train.microBatchSize, B) : B;
  const trainableEntries = [...state.student].filter(([, v]) => v.trainable);
  const trainable = trainableEntries.map(([, v]) => v);
  // variableGrads keys gradients by the engine's variable name, not by our parameter name.
  const paramNameOf = new Map(trainableEntries.map(([name, v]) => [v.name, name]));
  const temps = { studentTemp: config.loss.studentTemp, teacherTemp: hyper.teacherTemp, numViews };

  let gradSum: Map<string, tf.Tensor> | null = null;
  let teacherSum = tf.zeros([1, config.head.outDim]) as tf.Tensor2D;
  let loss = 0;
  let entropy = 0;
  let kl = 0;
  try {
    for (let start = 0, micro_i = 0; start < B; start += micro, micro_i++) {
      const rows = Math.min(micro, B - start);
      const weight = rows / B;
      const crops = batch.views.map((_, v) => viewSlice(batch, v, start, rows));
      try {
        const teacherLogits = tf.tidy(() =>
          multiCropForward(state.teacher, crops.slice(0, 2), { training: false, config }),
        );
        const { value, grads } = tf.variableGrads(() => {
          const studentLogits = multiCropForward(state.student, crops, {
            training: true,
            config,
            seed: config.train.seed,
            step: state.step,
            microBatch: micro_i,
          });
          const l = dinoLoss(studentLogits, teacherLogits, state.center, temps);
          // Diagnostics reuse this micro-batch's logits; they carry no gradient.
          entropy += weight * teacherEntropy(teacherLogits, state.center, hyper.teacherTemp);
          kl += weight * teacherStudentKl(studentLogits, teacherLogits, state.center, temps);
          return tf.mul(l, weight) as tf.Scalar;
        }, trainable);
        loss += value.dataSync()[0];
        value.dispose();
        const nextTeacherSum = tf.tidy(() =>
          tf.add(teacherSum, tf.sum(teacherLogits, 0, true)),
        ) as tf.Tensor2D;
        teacherSum.dispose();
        teacherSum = nextTeacherSum;
        teacherLogits.dispose();
        const named = Object.entries(grads).map(([v, g]) => [paramNameOf.get(v)!, g] as const);
        if (gradSum === null) {
          gradSum = new Map(named);
        } else {
          for (const [name, g] of named) {
            const prev = gradSum.get(name)!;
            gradSum.set(name, tf.add(prev, g));
            prev.dispose();
            g.dispose();
          }
        }
      } finally {
        tf.dispose(crops);
      }
    }
    if (!Number.isFinite(loss)) throw new NonFiniteLossError(state.step, loss);

    const { grads: clipped, maxNorm } = clipGradients(gradSum!, config.optim.clipGrad);
    if (clipped !== gradSum) tf.dispose([...gradSum!.values()]);
    gradSum = clipped;
    // First epochs: the head's last layer is skipped entirely (spec §7.4), not given a zero gradient.
    const skip = hyper.freezeLastLayer ? (name: string) => name.includes('last_layer') : undefined;
    state.optimizer.step(gradSum, { lr: hyper.lr, weightDecay: hyper.weightDecay, skip });
    emaUpdate(state.teacher, state.student, hyper.momentum);
    const newCenter = tf.tidy(() =>
      updateCenter(state.center, tf.div(teacherSum, 2 * B) as tf.Tensor2D, config.loss.centerMomentum),
    ) as tf.Tensor2D;
    state.center.dispose();
    state.center = newCenter;
    state.step += 1;
    return { loss, teacherEntropy: entropy, klTeacherStudent: kl, maxGradNorm: maxNorm };
  } finally {
    teacherSum.dispose();
    if (gradSum) tf.dispose([...gradSum.values()]);
  }
}
