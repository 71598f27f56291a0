import * as os from 'node:os';

/*
 * The figures of `bench:scale`, computed from what a run leaves behind: the per-step metrics
 * lines of its shards or slices, the workers' "merged round" log lines and the sizes of its
 * checkpoints. Pure functions, so the arithmetic reads apart from the processes that produce it.
 */

/** The fields of a stored metrics line that the figures use. */
export interface StepPoint {
  step: number;
  stepMs: number;
  /** When the step ended, ms since the epoch. */
  endMs: number;
}

/** One metrics file: a shard's (`shard-…`) or a round's slice's (`round-…-slice-i-of-n`). */
export interface JobSteps {
  name: string;
  steps: StepPoint[];
}

export function parseStepLines(name: string, text: string): JobSteps {
  const steps = text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as { step: number; stepMs: number; time: string })
    .map((line) => ({ step: line.step, stepMs: line.stepMs, endMs: Date.parse(line.time) }))
    .sort((a, b) => a.step - b.step);
  return { name, steps };
}

/** The slices of one round share a group; every shard is a group of its own. */
const groupOf = (name: string) => name.replace(/-slice-\d+-of-\d+$/, '');

/**
 * Images per second while jobs train, leaving out each job's first `warmSteps` steps (trainer
 * start, first-step compilation) and everything between jobs (queue hops, commits, merges).
 * Concurrent slices of a round add up: a group's images over its longest job's span.
 */
export function steadyImagesPerSecond(jobs: readonly JobSteps[], batchSize: number, warmSteps = 2): number {
  const groups = new Map<string, { images: number; spanMs: number }>();
  for (const job of jobs) {
    const counted = job.steps.slice(Math.min(warmSteps, Math.max(0, job.steps.length - 2)));
    if (counted.length < 2) continue;
    const group = groups.get(groupOf(job.name)) ?? { images: 0, spanMs: 0 };
    group.images += (counted.length - 1) * batchSize;
    group.spanMs = Math.max(group.spanMs, counted[counted.length - 1].endMs - counted[0].endMs);
    groups.set(groupOf(job.name), group);
  }
  let images = 0;
  let spanMs = 0;
  for (const group of groups.values()) {
    images += group.images;
    spanMs += group.spanMs;
  }
  return spanMs > 0 ? (images * 1000) / spanMs : NaN;
}

/** What a worker logged for one merged round (see apps/worker merge-round.ts). */
export interface MergeLog {
  fromStep: number;
  toStep: number;
  slices: number;
  mergeMs: number;
  bytesRead: number;
  bytesWritten: number;
  /** When the line was logged (the merge had committed), ms since the epoch. */
  endMs: number;
}

/** The merge of a round of `runId` in a worker's JSON log line, or null for any other line. */
export function mergeLogOf(runId: string, line: Record<string, unknown>): MergeLog | null {
  const match = /^run (\S+): merged round (\d+)\.\.(\d+) \((\d+) slices\) into step/.exec(String(line.msg));
  if (!match || match[1] !== runId) return null;
  return {
    fromStep: Number(match[2]),
    toStep: Number(match[3]),
    slices: Number(match[4]),
    mergeMs: Number(line.mergeMs),
    bytesRead: Number(line.bytesRead),
    bytesWritten: Number(line.bytesWritten),
    endMs: Number(line.time),
  };
}

/** Sizes of a committed checkpoint's objects. */
export interface CheckpointSize {
  totalBytes: number;
  studentBytes: number;
  outerBytes: number;
}

export interface RoundFigures {
  fromStep: number;
  toStep: number;
  slices: number;
  /** From the end of the previous merge (or the run's creation) to the end of this one. */
  wallMs: number;
  mergeMs: number;
  /** From the first slice's first step starting to the last slice's last step ending. */
  trainMs: number;
  /** Every slice's read of the round's start checkpoint (none from the seed). */
  sliceReadBytes: number;
  /** Every slice's result. */
  sliceWriteBytes: number;
  mergeReadBytes: number;
  mergeWriteBytes: number;
}

export const movedBytes = (r: RoundFigures) =>
  r.sliceReadBytes + r.sliceWriteBytes + r.mergeReadBytes + r.mergeWriteBytes;

/**
 * One entry per merged round, in step order. The merge reads the round's start (its student and
 * outer momentum; the seed's student for the first round, built in memory) and every slice's
 * result, so the slices' results are what it read beyond the start.
 */
export function roundFigures(
  merges: readonly MergeLog[],
  jobs: readonly JobSteps[],
  checkpoints: ReadonlyMap<number, CheckpointSize>,
  createdMs: number,
): RoundFigures[] {
  const sorted = [...merges].sort((a, b) => a.fromStep - b.fromStep);
  return sorted.map((merge, i) => {
    const startedMs = i === 0 ? createdMs : sorted[i - 1].endMs;
    const start = merge.fromStep > 0 ? checkpoints.get(merge.fromStep) : undefined;
    const end = checkpoints.get(merge.toStep);
    const studentBytes = end?.studentBytes ?? 0;
    const startRead = start ? studentBytes + start.outerBytes : studentBytes;
    const slicesOfRound = jobs.filter((job) =>
      job.name.startsWith(`round-${String(merge.fromStep).padStart(9, '0')}-slice-`),
    );
    const firstMs = Math.min(...slicesOfRound.map((job) => job.steps[0].endMs - job.steps[0].stepMs));
    const lastMs = Math.max(...slicesOfRound.map((job) => job.steps[job.steps.length - 1].endMs));
    return {
      fromStep: merge.fromStep,
      toStep: merge.toStep,
      slices: merge.slices,
      wallMs: merge.endMs - startedMs,
      mergeMs: merge.mergeMs,
      trainMs: slicesOfRound.length > 0 ? lastMs - firstMs : NaN,
      sliceReadBytes: start ? merge.slices * start.totalBytes : 0,
      sliceWriteBytes: Math.max(0, merge.bytesRead - startRead),
      mergeReadBytes: merge.bytesRead,
      mergeWriteBytes: merge.bytesWritten,
    };
  });
}

export const mb = (bytes: number) => bytes / 1e6;
export const pct = (part: number, whole: number) => (100 * part) / whole;

/** "AMD EPYC × 2 cores, OPENBLAS_CORETYPE=unset": printed with every speed figure. */
export function machineLabel(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() || 'unknown CPU';
  const coretype = process.env.OPENBLAS_CORETYPE?.trim() || 'unset';
  return `${model} × ${os.availableParallelism()} cores, OPENBLAS_CORETYPE=${coretype}`;
}
