import type { RunConfig } from '@dinoq/config';
import { resolveReplicas } from '../src/parallel/replica-count';
import { runSteps, type LoopStepMetrics, type PreparedBatch } from '../src/parallel/step-loop';
import type { ParallelStepMetrics, ReplicatedTrainer } from '../src/parallel/parallel-trainer';

describe('resolveReplicas', () => {
  const wasm = { name: 'wasm', kind: 'cpu' as const };
  const tensorflow = { name: 'tensorflow', kind: 'cpu' as const };
  const gpu = { name: 'tensorflow', kind: 'gpu' as const };

  test('auto: one per core on single-threaded backends, one on TensorFlow and GPUs', () => {
    expect(resolveReplicas('auto', wasm, 64, 8)).toBe(8);
    expect(resolveReplicas('auto', { name: 'cpu', kind: 'cpu' }, 64, 3)).toBe(3);
    expect(resolveReplicas('auto', tensorflow, 64, 8)).toBe(1);
    expect(resolveReplicas('auto', gpu, 64, 8)).toBe(1);
  });

  test('an explicit count is kept, but never above the batch size', () => {
    expect(resolveReplicas(2, gpu, 64, 8)).toBe(2);
    expect(resolveReplicas(16, wasm, 4, 2)).toBe(4);
    expect(() => resolveReplicas(0, wasm, 64)).toThrow(/positive integer or "auto", got 0/);
    expect(() => resolveReplicas(1.5, wasm, 64)).toThrow(/got 1.5/);
  });
});

/**
 * A trainer stand-in that records what it was fed and when, so the loop's ordering (prefetch of
 * step s+1 before step s trains, abandon checks between steps) can be observed exactly.
 */
class RecordingTrainer implements ReplicatedTrainer {
  readonly replicas = 3;
  readonly config = {} as RunConfig;
  readonly datasetSize = 100;
  readonly itersPerEpoch = 10;
  readonly totalSteps = 100;
  readonly backendInfo = null;
  step: number;
  readonly events: string[];
  constructor(
    start: number,
    events: string[],
    readonly stride = 1,
  ) {
    this.step = start;
    this.events = events;
  }
  get epoch() {
    return Math.floor(this.step / this.itersPerEpoch);
  }
  async trainStep(batch: PreparedBatch): Promise<ParallelStepMetrics> {
    this.events.push(`train ${this.step} with batch ${batch.views[0][0]}`);
    const step = this.step;
    this.step += this.stride;
    return { step, loss: step } as ParallelStepMetrics;
  }
  async checkpointFiles() {
    return {};
  }
  async replicaChecksums() {
    return [];
  }
  async dispose() {}
}

describe('runSteps', () => {
  function batch(step: number): PreparedBatch {
    return { views: [new Float32Array([step])], sizes: [1], batch: 1, busyMs: 10 + step };
  }

  test('trains from the trainer step to toStep, asking for the next batch before each step', async () => {
    const events: string[] = [];
    const trainer = new RecordingTrainer(5, events);
    const seen: LoopStepMetrics[] = [];
    const trained = await runSteps({
      trainer,
      toStep: 8,
      batchFor: async (s) => {
        events.push(`batch ${s}`);
        return batch(s);
      },
      onStep: (m) => {
        seen.push(m);
      },
    });
    expect(trained).toBe(3);
    expect(events).toEqual([
      'batch 5',
      'batch 6',
      'train 5 with batch 5',
      'batch 7',
      'train 6 with batch 6',
      'train 7 with batch 7',
    ]);
    expect(seen.map((m) => [m.step, m.dataMs, m.replicas])).toEqual([
      [5, 15, 3],
      [6, 16, 3],
      [7, 17, 3],
    ]);
    expect(seen.every((m) => m.dataWaitMs >= 0)).toBe(true);
  });

  test("a lane's trainer takes every stride-th step of the range, and asks for those batches only", async () => {
    const events: string[] = [];
    // Slice 1 of 3 in a round of steps [10, 20): steps 11, 14, 17.
    const trainer = new RecordingTrainer(11, events, 3);
    const trained = await runSteps({
      trainer,
      toStep: 20,
      batchFor: async (s) => {
        events.push(`batch ${s}`);
        return batch(s);
      },
    });
    expect(trained).toBe(3);
    expect(events).toEqual([
      'batch 11',
      'batch 14',
      'train 11 with batch 11',
      'batch 17',
      'train 14 with batch 14',
      'train 17 with batch 17',
    ]);
    expect(trainer.step).toBe(20);
  });

  test('a throwing beforeStep stops between steps and waits for the batch in flight', async () => {
    const events: string[] = [];
    const trainer = new RecordingTrainer(0, events);
    let calls = 0;
    let settled = 0;
    const run = runSteps({
      trainer,
      toStep: 10,
      batchFor: (s) =>
        new Promise((resolve) =>
          setTimeout(() => {
            settled++;
            resolve(batch(s));
          }, 5),
        ),
      beforeStep: () => {
        if (++calls === 3) throw new Error('abandoned');
      },
    });
    await expect(run).rejects.toThrow('abandoned');
    expect(trainer.step).toBe(2);
    // Batches 0, 1 and 2 were asked for; none is left running after the loop returns.
    expect(settled).toBe(3);
  });

  test('onStep returning false ends the loop after that step', async () => {
    const trainer = new RecordingTrainer(0, []);
    const trained = await runSteps({
      trainer,
      toStep: 10,
      batchFor: async (s) => batch(s),
      onStep: (m) => m.step < 1,
    });
    expect(trained).toBe(2);
    expect(trainer.step).toBe(2);
  });
});
