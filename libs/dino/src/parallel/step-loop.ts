import type { CropBatch } from '../step-types';
import type { ParallelStepMetrics, ReplicatedTrainer } from './parallel-trainer';

/** A batch as the data pipeline hands it over: the crops and what producing them cost. */
export interface PreparedBatch extends CropBatch {
  /** Time the producer spent computing this batch (its own thread's busy time, not wall time). */
  busyMs?: number;
}

/** One step's metrics with the data pipeline's share. */
export interface LoopStepMetrics extends ParallelStepMetrics {
  /** How long the step waited for its batch: zero when the pipeline kept ahead. */
  dataWaitMs: number;
  /** Busy time the pipeline spent producing this step's batch. */
  dataMs: number;
  replicas: number;
}

export interface StepLoopOptions {
  trainer: ReplicatedTrainer;
  /** Produces batch `step`; called for the next step while the current one trains. */
  batchFor: (step: number) => Promise<PreparedBatch>;
  /** Trains the trainer's steps below this global step (its lane's, with a stride). */
  toStep: number;
  /** Called before every step, where the state is whole: throw to stop (an abandon request). */
  beforeStep?: () => void;
  /** Called after every step; the loop awaits it (a checkpoint write), and `false` stops the loop. */
  onStep?: (metrics: LoopStepMetrics) => void | boolean | Promise<void | boolean>;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Trains step after step with the next batch prepared while the current step runs. With
 * replicas (or a data thread) the preparation truly overlaps the step; with a trainer in this
 * thread it runs in the gaps the step leaves, and `dataWaitMs` shows what that costs.
 * Returns the number of steps trained.
 */
export async function runSteps(opts: StepLoopOptions): Promise<number> {
  const { trainer, batchFor, toStep } = opts;
  let next: Promise<PreparedBatch> | null = trainer.step < toStep ? batchFor(trainer.step) : null;
  let trained = 0;
  try {
    while (next !== null && trainer.step < toStep) {
      opts.beforeStep?.();
      const waitStart = performance.now();
      const batch = await next;
      const dataWaitMs = performance.now() - waitStart;
      const following = trainer.step + trainer.stride;
      next = following < toStep ? batchFor(following) : null;
      // Lets the prefetch start (and IPC messages arrive) before a synchronous step blocks.
      await yieldToEventLoop();
      const metrics = await trainer.trainStep(batch);
      trained++;
      const goOn = await opts.onStep?.({
        ...metrics,
        dataWaitMs,
        dataMs: batch.busyMs ?? 0,
        replicas: trainer.replicas,
      });
      if (goOn === false) break;
    }
  } finally {
    // A prefetch still in flight is awaited so that no work outlives the loop.
    await next?.catch(() => undefined);
  }
  return trained;
}
