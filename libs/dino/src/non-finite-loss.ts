import type { RunConfig } from '@dinoq/config';

/** The parts of a run config that can make the loss overflow. */
export type LossStabilityConfig = Pick<RunConfig, 'augment' | 'optim' | 'loss' | 'train'>;

/** Normalised pixels reach about ±2.6 with the ImageNet mean/std; far beyond that, activations can overflow. */
const NORMALISED_INPUT_LIMIT = 100;
/** The reference peak learning rate per 256 images (spec §9); ten times it is suspicious. */
const REFERENCE_LR = 0.0005;
const HIGH_LR = 10 * REFERENCE_LR;
/** Below this, 1/T turns ordinary logits into exponents float32 cannot hold. */
const LOW_TEMPERATURE = 0.01;

const list = (values: readonly number[]) => `[${values.map((v) => String(v)).join(', ')}]`;

function normalisationSuspect({ mean, std }: RunConfig['augment']): string | null {
  // Pixels lie in [0, 1], so the largest normalised magnitude of a channel sits at 0 or at 1.
  const reach = Math.max(...std.map((s, c) => Math.max(Math.abs(mean[c]), Math.abs(1 - mean[c])) / s));
  if (reach <= NORMALISED_INPUT_LIMIT) return null;
  const cause =
    Math.min(...std) < 0.01
      ? `augment.std = ${list(std)} is near zero, and normalisation divides every pixel by it`
      : `augment.mean = ${list(mean)} with augment.std = ${list(std)}`;
  return (
    `${cause}: inputs reach ±${reach.toPrecision(2)} (about ±2.6 with the defaults), where activations can ` +
    "overflow float32. Use the data set's per-channel mean and std of pixels in [0, 1] " +
    '(the defaults [0.485, 0.456, 0.406] / [0.229, 0.224, 0.225] suit natural images)'
  );
}

function learningRateSuspect({ optim, train }: LossStabilityConfig): string | null {
  if (optim.lr < HIGH_LR) return null;
  const peak = (optim.lr * train.batchSize) / 256;
  return (
    `optim.lr = ${optim.lr} (peak ${peak.toPrecision(2)} at train.batchSize ${train.batchSize}) is ` +
    `${Math.round(optim.lr / REFERENCE_LR)}× the reference ${REFERENCE_LR}: lower it` +
    (optim.warmupEpochs === 0 && optim.warmupFor === undefined
      ? ', or give it optim.warmupEpochs (or optim.warmupFor, e.g. { "fraction": 0.1 }) to ramp up'
      : '')
  );
}

function temperatureSuspects({ loss }: LossStabilityConfig): string[] {
  const fields = [
    ['loss.teacherTemp', loss.teacherTemp, '0.04–0.07'],
    ['loss.warmupTeacherTemp', loss.warmupTeacherTemp, '0.04'],
    ['loss.studentTemp', loss.studentTemp, '0.1'],
  ] as const;
  return fields
    .filter(([, value]) => value < LOW_TEMPERATURE)
    .map(
      ([field, value, reference]) =>
        `${field} = ${value} multiplies the logits by ${(1 / value).toPrecision(2)} before the softmax ` +
        `(the reference uses ${reference}): raise it`,
    );
}

/**
 * Settings of `config` that make a non-finite loss likely, most likely first, each naming the
 * field, its value and what to do. Empty when every value is in the usual range.
 */
export function nonFiniteLossSuspects(config: LossStabilityConfig): string[] {
  const suspects = [
    normalisationSuspect(config.augment),
    learningRateSuspect(config),
    ...temperatureSuspects(config),
  ];
  if (config.optim.clipGrad === 0)
    suspects.push('optim.clipGrad = 0 turns gradient clipping off (the reference clips at 3.0)');
  return suspects.filter((s): s is string => s !== null);
}

/** The loss of a step is NaN or ±Infinity; the message names the settings that likely caused it. */
export class NonFiniteLossError extends Error {
  override readonly name = 'NonFiniteLossError';
  /** What `nonFiniteLossSuspects` found in the run's config. */
  readonly suspects: string[];

  constructor(
    readonly step: number,
    readonly value: number,
    config: LossStabilityConfig,
  ) {
    const suspects = nonFiniteLossSuspects(config);
    const advice =
      suspects.length > 0
        ? `Suspicious settings: ${suspects.join('; ')}.`
        : 'No setting is out of the usual range, so a float32 overflow during training is the likely ' +
          'cause: lower optim.lr, lower loss.teacherTemp or raise optim.freezeLastLayer (spec §19).';
    super(`loss is ${value} at step ${step}; the run is stopped and no parameter was updated. ${advice}`);
    this.suspects = suspects;
  }
}
