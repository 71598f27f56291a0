import { parseRunConfig, planRun, resolveRunConfig, type RunConfigInput } from '@dinoq/config';
import { HyperSchedule } from '../src/train-state';

/** Every step's hyper-parameters over a run of `datasetSize` images. */
function hyperOf(input: RunConfigInput, datasetSize: number) {
  const schedule = new HyperSchedule(parseRunConfig(input), datasetSize);
  return Array.from({ length: schedule.totalSteps }, (_, step) => schedule.at(step));
}

describe('schedule lengths in epochs, steps or fractions of the run', () => {
  const base: RunConfigInput = {
    train: { epochs: 4, batchSize: 64 },
    loss: { warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 2 },
    optim: { warmupEpochs: 1, freezeLastLayer: 1 },
  };

  it('gives exactly the whole-epoch fields’ schedules when the same lengths are given as { epochs }', () => {
    const legacy = hyperOf(base, 640);
    const spans = hyperOf(
      {
        ...base,
        loss: { ...base.loss, warmupTeacherTempFor: { epochs: 2 } },
        optim: { warmupFor: { epochs: 1 }, freezeLastLayerFor: { epochs: 1 } },
      },
      640,
    );
    expect(spans).toEqual(legacy);
    // The reference shape: lr 0 at step 0, one temperature per epoch, last layer frozen for epoch 0.
    expect(legacy[0].lr).toBe(0);
    expect(legacy.slice(0, 10).every((h) => h.teacherTemp === 0.04 && h.freezeLastLayer)).toBe(true);
    expect(legacy.slice(10, 40).every((h) => h.teacherTemp === 0.07 && !h.freezeLastLayer)).toBe(true);
  });

  it('keeps every preset exactly as before', () => {
    const tiny = resolveRunConfig('fmnist-tiny');
    const schedule = new HyperSchedule(tiny, 6400);
    expect(schedule.totalSteps).toBe(1000);
    expect(schedule.at(0)).toMatchObject({ lr: 0, freezeLastLayer: true, teacherTemp: 0.04 });
    expect(schedule.at(99).freezeLastLayer).toBe(true);
    expect(schedule.at(100)).toMatchObject({ lr: 0.0005, freezeLastLayer: false });
  });

  it('lets a one-epoch run train its last layer after a fraction of the run', () => {
    const frozenAll = hyperOf({ train: { epochs: 1, batchSize: 64 }, optim: { warmupEpochs: 0 } }, 640);
    expect(frozenAll.every((h) => h.freezeLastLayer)).toBe(true);

    const tenth = hyperOf(
      {
        train: { epochs: 1, batchSize: 64 },
        optim: { warmupFor: { fraction: 0.3 }, freezeLastLayerFor: { fraction: 0.1 } },
      },
      640,
    );
    expect(tenth.map((h) => h.freezeLastLayer)).toEqual([true, ...Array<boolean>(9).fill(false)]);
    // Three warmup steps from 0 to the peak (0.0005 × 64 / 256, both included), then the cosine.
    const peak = 0.000125;
    tenth.slice(0, 4).forEach((h, step) => expect(h.lr).toBeCloseTo([0, peak / 2, peak, peak][step], 15));
    expect(tenth[4].lr).toBeLessThan(peak);
  });

  it('ramps the teacher temperature per step when given in steps, and counts a run in steps', () => {
    const hyper = hyperOf(
      {
        train: { epochs: 1, steps: 25, batchSize: 64 },
        loss: { warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempFor: { steps: 4 } },
        optim: { warmupFor: { steps: 5 }, freezeLastLayerFor: { steps: 2 } },
      },
      640,
    );
    expect(hyper).toHaveLength(25);
    [0.04, 0.05, 0.06, 0.07, 0.07, 0.07].forEach((t, step) =>
      expect(hyper[step].teacherTemp).toBeCloseTo(t, 15),
    );
    expect(hyper.map((h) => h.freezeLastLayer).lastIndexOf(true)).toBe(1);
    expect(hyper[3].lr).toBeCloseTo(0.75 * 0.000125, 15);
    expect(hyper[4].lr).toBeCloseTo(0.000125, 15);
    expect(planRun(640, { batchSize: 64, epochs: 1, steps: 25, stepsPerShard: 10 })).toEqual({
      itersPerEpoch: 10,
      totalSteps: 25,
      stepsPerShard: 10,
      numShards: 3,
    });
  });
});
