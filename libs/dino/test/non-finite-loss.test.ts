import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { parseRunConfig, resolveRunConfig, type RunConfigInput } from '@dinoq/config';
import { NonFiniteLossError, nonFiniteLossSuspects } from '../src/non-finite-loss';
import { DinoTrainer } from '../src/trainer';

function tinyConfig(overrides: Partial<RunConfigInput> = {}) {
  return parseRunConfig({
    model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 1, numHeads: 2 },
    head: { outDim: 64, hiddenDim: 32, bottleneckDim: 8 },
    optim: { warmupEpochs: 0, freezeLastLayer: 0 },
    train: { batchSize: 4, epochs: 1 },
    ...overrides,
    augment: { globalCropSize: 8, localCropSize: 4, localCropsNumber: 0, ...overrides.augment },
  });
}

describe('NonFiniteLossError', () => {
  it('blames a near-zero augment.std, with the input range it causes, rather than the learning rate', () => {
    const config = tinyConfig({ augment: { std: [1e-12, 1e-12, 1e-12] } });
    const error = new NonFiniteLossError(3, NaN, config);
    expect(error.message).toMatch(
      /^loss is NaN at step 3; the run is stopped and no parameter was updated\./,
    );
    expect(error.message).toContain('augment.std = [1e-12, 1e-12, 1e-12] is near zero');
    expect(error.message).toContain('inputs reach ±5.9e+11');
    expect(error.message).not.toMatch(/optim\.lr/);
    expect(error.suspects).toHaveLength(1);
  });

  it('names every suspicious setting with its value, the likeliest first', () => {
    const config = tinyConfig({
      augment: { mean: [0.5, 0.5, 0.5], std: [0.001, 0.2, 0.2] },
      optim: { lr: 0.05, warmupEpochs: 0, clipGrad: 0 },
      loss: { teacherTemp: 0.001, warmupTeacherTemp: 0.001 },
    });
    const suspects = nonFiniteLossSuspects(config);
    expect(suspects.map((s) => s.split(' = ')[0])).toEqual([
      'augment.std',
      'optim.lr',
      'loss.teacherTemp',
      'loss.warmupTeacherTemp',
      'optim.clipGrad',
    ]);
    expect(suspects[1]).toContain(
      'optim.lr = 0.05 (peak 0.00078 at train.batchSize 4) is 100× the reference',
    );
    expect(suspects[1]).toContain('optim.warmupEpochs');
    expect(suspects[2]).toContain('multiplies the logits by 1.0e+3');
  });

  it('names a far-off augment.mean too, and nothing in a preset', () => {
    expect(nonFiniteLossSuspects(tinyConfig({ augment: { mean: [500, 0, 0] } }))[0]).toMatch(
      /^augment\.mean = \[500, 0, 0\] with augment\.std = \[0\.229, 0\.224, 0\.225\]: inputs reach ±2\.2e\+3/,
    );
    const preset = resolveRunConfig('fmnist-tiny', {});
    expect(nonFiniteLossSuspects(preset)).toEqual([]);
    expect(new NonFiniteLossError(0, Infinity, preset).message).toMatch(
      /loss is Infinity at step 0.*No setting is out of the usual range.*lower optim\.lr/,
    );
  });

  it('is what a training step throws, diagnosed from the run config', async () => {
    await tf.setBackend('cpu');
    const config = tinyConfig({ augment: { std: [1e-12, 1e-12, 1e-12] } });
    const trainer = DinoTrainer.create(config, 8);
    try {
      const size = config.augment.globalCropSize;
      // What normalising by a near-zero std gives once it overflows: Infinity − Infinity = NaN.
      const view = () => new Float32Array(config.train.batchSize * size * size * 3).fill(NaN);
      const batch = {
        views: [view(), view()],
        sizes: [size, size],
        batch: config.train.batchSize,
        channels: 3,
      };
      let error: unknown;
      try {
        trainer.trainStep(batch);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(NonFiniteLossError);
      expect((error as NonFiniteLossError).suspects[0]).toMatch(/^augment\.std = \[1e-12, 1e-12, 1e-12\]/);
      expect(trainer.step).toBe(0);
    } finally {
      trainer.dispose();
    }
  });
});
