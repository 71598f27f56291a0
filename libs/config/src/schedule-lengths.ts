import type { RunConfig, ScheduleSpan } from './run-config';

/**
 * Schedule phases resolved to optimizer steps, once the iterations per epoch are known. One place
 * turns `{ epochs }`, `{ steps }` and `{ fraction }` (and the older whole-epoch fields) into steps,
 * so the schedules, the training step and run creation agree on them.
 */

export type ScheduleLengthConfig = Pick<RunConfig, 'optim' | 'loss' | 'train'>;

export interface ScheduleLengths {
  itersPerEpoch: number;
  totalSteps: number;
  /** Steps of the linear learning-rate warmup (the first uses lr 0). */
  lrWarmupSteps: number;
  /** Steps during which the head's last layer is not updated. */
  freezeLastLayerSteps: number;
  /**
   * The teacher-temperature ramp: whole epochs with one value per epoch (the reference), or steps
   * with one value per step.
   */
  teacherTempWarmup: { per: 'epoch'; epochs: number } | { per: 'step'; steps: number };
}

/** A run's length: train.steps when given, else train.epochs whole epochs. */
export function totalStepsOf(train: { epochs: number; steps?: number }, itersPerEpoch: number): number {
  return train.steps ?? train.epochs * itersPerEpoch;
}

/**
 * A span in steps, rounded down. The epsilon keeps e.g. 0.7 × 10 = 7.000000000000001 and
 * 0.29 × 100 = 28.999999999999996 whole.
 */
export function spanSteps(span: ScheduleSpan, itersPerEpoch: number, totalSteps: number): number {
  if (span.steps !== undefined) return span.steps;
  if (span.fraction !== undefined) return Math.floor(span.fraction * totalSteps + 1e-9);
  return Math.floor((span.epochs ?? 0) * itersPerEpoch + 1e-9);
}

/** Each phase from its span when given, else from the whole-epoch field the reference uses. */
export function scheduleLengths(config: ScheduleLengthConfig, itersPerEpoch: number): ScheduleLengths {
  const { optim, loss, train } = config;
  const totalSteps = totalStepsOf(train, itersPerEpoch);
  const steps = (span: ScheduleSpan | undefined, epochs: number) =>
    spanSteps(span ?? { epochs }, itersPerEpoch, totalSteps);
  const teacherSpan = loss.warmupTeacherTempFor;
  return {
    itersPerEpoch,
    totalSteps,
    lrWarmupSteps: Math.min(totalSteps, steps(optim.warmupFor, optim.warmupEpochs)),
    freezeLastLayerSteps: steps(optim.freezeLastLayerFor, optim.freezeLastLayer),
    teacherTempWarmup:
      teacherSpan === undefined || teacherSpan.epochs !== undefined
        ? { per: 'epoch', epochs: teacherSpan?.epochs ?? loss.warmupTeacherTempEpochs }
        : { per: 'step', steps: spanSteps(teacherSpan, itersPerEpoch, totalSteps) },
  };
}

/**
 * Warmups longer than the run, as "path: message" reasons; checked once the dataset (and so the
 * run's length in steps) is known. A freeze longer than the run only means the last layer never
 * trains, which the reference allows too.
 */
export function scheduleStepProblems(config: ScheduleLengthConfig, itersPerEpoch: number): string[] {
  const lengths = scheduleLengths(config, itersPerEpoch);
  const { totalSteps } = lengths;
  const problems: string[] = [];
  const warmupSteps = config.optim.warmupFor
    ? spanSteps(config.optim.warmupFor, itersPerEpoch, totalSteps)
    : lengths.lrWarmupSteps;
  if (warmupSteps > totalSteps)
    problems.push(`optim.warmupFor: ${warmupSteps} steps exceed the run's ${totalSteps} steps`);
  const teacher = lengths.teacherTempWarmup;
  const teacherSteps = teacher.per === 'step' ? teacher.steps : teacher.epochs * itersPerEpoch;
  if (teacherSteps > totalSteps)
    problems.push(
      `${config.loss.warmupTeacherTempFor ? 'loss.warmupTeacherTempFor' : 'loss.warmupTeacherTempEpochs'}: ` +
        `${teacherSteps} steps exceed the run's ${totalSteps} steps`,
    );
  return problems;
}
