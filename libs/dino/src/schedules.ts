import type { RunConfig } from '@dinoq/config';

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
  checkFinite(fn, 'base', base);
  checkFinite(fn, 'final', final);
  checkFinite(fn, 'startWarmup', startWarmup);
  checkCount(fn, 'epochs', epochs, 1);
  checkCount(fn, 'itersPerEpoch', itersPerEpoch, 1);
  if (!(warmupEpochs >= 0 && warmupEpochs <= epochs))
    throw new Error(`${fn}: warmupEpochs must be in [0, epochs=${epochs}], got ${warmupEpochs}`);
  const total = epochs * itersPerEpoch;
  // The epsilon keeps e.g. 0.7 × 10 = 7.000000000000001 and 0.29 × 100 = 28.999999999999996 whole.
  const warmupIters = Math.min(total, Math.floor(warmupEpochs * itersPerEpoch + 1e-9));
  const out = new Float64Array(total);
  out.set(linspace(startWarmup, base, warmupIters), 0);
  const cosineIters = total - warmupIters;
  for (let j = 0; j < cosineIters; j++)
    out[warmupIters + j] = final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * j) / cosineIters));
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

export interface MomentumScheduleOptions {
  /** Starting teacher momentum (reference 0.996). */
  momentumTeacher: number;
  epochs: number;
  itersPerEpoch: number;
}

/** Teacher EMA momentum per iteration: cosine from momentumTeacher towards 1, no warmup. */
export function momentumSchedule(opts: MomentumScheduleOptions): Float64Array {
  return cosineSchedule({
    base: opts.momentumTeacher,
    final: 1,
    epochs: opts.epochs,
    itersPerEpoch: opts.itersPerEpoch,
  });
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
  /** Per epoch. */
  teacherTemp: Float64Array;
}

/** The parts of a run config the schedules read. */
export type ScheduleConfig = Pick<RunConfig, 'optim' | 'loss' | 'train'>;

/** All four schedules of a run; `train.batchSize` is the global batch the lr is scaled by. */
export function buildSchedules(config: ScheduleConfig, itersPerEpoch: number): Schedules {
  const { optim, loss, train } = config;
  const epochs = train.epochs;
  return {
    lr: cosineSchedule({
      base: lrPeak(optim.lr, train.batchSize),
      final: optim.minLr,
      epochs,
      itersPerEpoch,
      warmupEpochs: optim.warmupEpochs,
    }),
    wd: cosineSchedule({ base: optim.weightDecay, final: optim.weightDecayEnd, epochs, itersPerEpoch }),
    momentum: momentumSchedule({ momentumTeacher: optim.momentumTeacher, epochs, itersPerEpoch }),
    teacherTemp: teacherTempSchedule({
      warmupTeacherTemp: loss.warmupTeacherTemp,
      teacherTemp: loss.teacherTemp,
      warmupEpochs: loss.warmupTeacherTempEpochs,
      epochs,
    }),
  };
}
