import { scheduleLengths, type RunConfig } from '@dinoq/config';

/**
 * Precomputed schedules indexed by global iteration (or epoch for the teacher temperature),
 * as in the reference training script (spec §7.2): a resumed run indexes the same arrays.
 */

export interface CosineScheduleOptions {
  base: number;
  final: number;
  epochs: number;
  itersPerEpoch: number;
  /** Linear warmup length in epochs; may be fractional (rounded down to whole iterations). */
  warmupEpochs?: number;
  /** First warmup value. */
  startWarmup?: number;
}

function checkCount(fn: string, field: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${fn}: ${field} must be an integer ≥ ${min}, got ${n}`);
}

function checkFinite(fn: string, field: string, x: number): void {
  if (!Number.isFinite(x)) throw new Error(`${fn}: ${field} must be a finite number, got ${x}`);
}

/** n values from start to stop with both endpoints included (n = 1 gives [start]). */
export function linspace(start: number, stop: number, n: number): Float64Array {
  checkCount('linspace', 'n', n, 0);
  const out = new Float64Array(n);
  if (n === 1) out[0] = start;
  if (n > 1) {
    const step = (stop - start) / (n - 1);
    for (let j = 0; j < n; j++) out[j] = start + j * step;
    out[n - 1] = stop;
  }
  return out;
}

/**
 * Warmup of W = ⌊warmupEpochs·I⌋ values linearly from startWarmup to base (both included,
 * so the first step uses exactly startWarmup), then for j = 0..T−W−1
 * final + ½(base − final)(1 + cos(π·j/(T − W))): starts at base and approaches final without
 * reaching it.
 */
export function cosineSchedule(opts: CosineScheduleOptions): Float64Array {
  const { base, final, epochs, itersPerEpoch, warmupEpochs = 0, startWarmup = 0 } = opts;
  const fn = 'cosineSchedule';
  checkCount(fn, 'epochs', epochs, 1);
  checkCount(fn, 'itersPerEpoch', itersPerEpoch, 1);
  if (!(warmupEpochs >= 0 && warmupEpochs <= epochs))
    throw new Error(`${fn}: warmupEpochs must be in [0, epochs=${epochs}], got ${warmupEpochs}`);
  const totalSteps = epochs * itersPerEpoch;
  // The epsilon keeps e.g. 0.7 × 10 = 7.000000000000001 and 0.29 × 100 = 28.999999999999996 whole.
  const warmupSteps = Math.min(totalSteps, Math.floor(warmupEpochs * itersPerEpoch + 1e-9));
  return cosineScheduleSteps({ base, final, totalSteps, warmupSteps, startWarmup });
}

export interface CosineStepsOptions {
  base: number;
  final: number;
  totalSteps: number;
  /** Linear warmup length in steps (at most totalSteps). */
  warmupSteps?: number;
  startWarmup?: number;
}

/** `cosineSchedule` with its lengths in steps: a run given in steps, or a warmup in steps. */
export function cosineScheduleSteps(opts: CosineStepsOptions): Float64Array {
  const { base, final, totalSteps, warmupSteps = 0, startWarmup = 0 } = opts;
  const fn = 'cosineScheduleSteps';
  checkFinite(fn, 'base', base);
  checkFinite(fn, 'final', final);
  checkFinite(fn, 'startWarmup', startWarmup);
  checkCount(fn, 'totalSteps', totalSteps, 1);
  checkCount(fn, 'warmupSteps', warmupSteps, 0);
  if (warmupSteps > totalSteps)
    throw new Error(`${fn}: warmupSteps (${warmupSteps}) must not exceed totalSteps (${totalSteps})`);
  const out = new Float64Array(totalSteps);
  out.set(linspace(startWarmup, base, warmupSteps), 0);
  const cosineSteps = totalSteps - warmupSteps;
  for (let j = 0; j < cosineSteps; j++)
    out[warmupSteps + j] = final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * j) / cosineSteps));
  return out;
}

export interface TeacherTempScheduleOptions {
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupEpochs: number;
  epochs: number;
}

/** Per epoch: warmupEpochs values from warmupTeacherTemp to teacherTemp (both included), then constant. */
export function teacherTempSchedule(opts: TeacherTempScheduleOptions): Float64Array {
  const { warmupTeacherTemp, teacherTemp, warmupEpochs, epochs } = opts;
  const fn = 'teacherTempSchedule';
  checkFinite(fn, 'warmupTeacherTemp', warmupTeacherTemp);
  checkFinite(fn, 'teacherTemp', teacherTemp);
  checkCount(fn, 'epochs', epochs, 1);
  checkCount(fn, 'warmupEpochs', warmupEpochs, 0);
  if (warmupEpochs > epochs)
    throw new Error(`${fn}: warmupEpochs (${warmupEpochs}) must not exceed epochs (${epochs})`);
  const out = new Float64Array(epochs).fill(teacherTemp);
  out.set(linspace(warmupTeacherTemp, teacherTemp, warmupEpochs), 0);
  return out;
}

export type MomentumScheduleOptions = {
  /** Starting teacher momentum (reference 0.996). */
  momentumTeacher: number;
} & ({ epochs: number; itersPerEpoch: number } | { totalSteps: number });

/** Teacher EMA momentum per iteration: cosine from momentumTeacher towards 1, no warmup. */
export function momentumSchedule(opts: MomentumScheduleOptions): Float64Array {
  const base = opts.momentumTeacher;
  if ('totalSteps' in opts) return cosineScheduleSteps({ base, final: 1, totalSteps: opts.totalSteps });
  return cosineSchedule({ base, final: 1, epochs: opts.epochs, itersPerEpoch: opts.itersPerEpoch });
}

/** Peak learning rate under the linear scaling rule: lr is given per 256 images. */
export function lrPeak(lr: number, globalBatch: number): number {
  checkFinite('lrPeak', 'lr', lr);
  checkCount('lrPeak', 'globalBatch', globalBatch, 1);
  return (lr * globalBatch) / 256;
}

export interface Schedules {
  /** Per iteration, every parameter group. */
  lr: Float64Array;
  /** Per iteration, regularized group only. */
  wd: Float64Array;
  /** Per iteration, teacher EMA momentum. */
  momentum: Float64Array;
  /** Per epoch (the reference) or per iteration, as `teacherTempPer` says. */
  teacherTemp: Float64Array;
  teacherTempPer: 'epoch' | 'step';
  /** Iterations during which the head's last layer is not updated. */
  freezeLastLayerSteps: number;
}

/** The parts of a run config the schedules read. */
export type ScheduleConfig = Pick<RunConfig, 'optim' | 'loss' | 'train'>;

/** The teacher temperature per epoch (a ramp in epochs, as the reference) or per step. */
function teacherTemps(config: ScheduleConfig, itersPerEpoch: number) {
  const { loss } = config;
  const { totalSteps, teacherTempWarmup } = scheduleLengths(config, itersPerEpoch);
  if (teacherTempWarmup.per === 'epoch') {
    const epochs = Math.max(Math.ceil(totalSteps / itersPerEpoch), teacherTempWarmup.epochs);
    const values = teacherTempSchedule({
      warmupTeacherTemp: loss.warmupTeacherTemp,
      teacherTemp: loss.teacherTemp,
      warmupEpochs: teacherTempWarmup.epochs,
      epochs,
    });
    return { teacherTemp: values, teacherTempPer: 'epoch' as const };
  }
  const values = new Float64Array(totalSteps).fill(loss.teacherTemp);
  values.set(
    linspace(loss.warmupTeacherTemp, loss.teacherTemp, Math.min(teacherTempWarmup.steps, totalSteps)),
  );
  return { teacherTemp: values, teacherTempPer: 'step' as const };
}

/** All schedules of a run; `train.batchSize` is the global batch the lr is scaled by. */
export function buildSchedules(config: ScheduleConfig, itersPerEpoch: number): Schedules {
  const { optim, train } = config;
  const lengths = scheduleLengths(config, itersPerEpoch);
  const { totalSteps } = lengths;
  return {
    lr: cosineScheduleSteps({
      base: lrPeak(optim.lr, train.batchSize),
      final: optim.minLr,
      totalSteps,
      warmupSteps: lengths.lrWarmupSteps,
    }),
    wd: cosineScheduleSteps({ base: optim.weightDecay, final: optim.weightDecayEnd, totalSteps }),
    momentum: momentumSchedule({ momentumTeacher: optim.momentumTeacher, totalSteps }),
    ...teacherTemps(config, itersPerEpoch),
    freezeLastLayerSteps: lengths.freezeLastLayerSteps,
  };
}
