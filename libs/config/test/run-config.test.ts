import { ConfigError, parseRunConfig, presetNames, resolveModelDims, resolveRunConfig } from '../src';

describe('run config', () => {
  it('fills every default from the spec', () => {
    const c = parseRunConfig({});
    expect(c.model).toMatchObject({ arch: 'vit_small', patchSize: 16, dropPathRate: 0.1, gelu: 'exact' });
    expect(c.head).toEqual({
      outDim: 65536,
      hiddenDim: 2048,
      bottleneckDim: 256,
      nlayers: 3,
      normLastLayer: true,
    });
    expect(c.loss).toEqual({
      studentTemp: 0.1,
      teacherTemp: 0.04,
      warmupTeacherTemp: 0.04,
      warmupTeacherTempEpochs: 0,
      centerMomentum: 0.9,
    });
    expect(c.optim).toMatchObject({ lr: 0.0005, minLr: 1e-6, warmupEpochs: 10, weightDecay: 0.04 });
    expect(c.optim).toMatchObject({
      weightDecayEnd: 0.4,
      clipGrad: 3,
      freezeLastLayer: 1,
      momentumTeacher: 0.996,
    });
    expect(c.augment).toMatchObject({ globalCropSize: 224, localCropSize: 96, localCropsNumber: 8 });
    expect(c.augment.globalCropsScale).toEqual([0.4, 1]);
    expect(c.augment.localCropsScale).toEqual([0.05, 0.4]);
    expect(c.train).toMatchObject({ batchSize: 64, epochs: 100, seed: 0 });
  });

  it('resolves named sizes and lets explicit dims override them', () => {
    expect(resolveModelDims({ arch: 'vit_tiny' })).toEqual({ embedDim: 192, depth: 12, numHeads: 3 });
    expect(resolveModelDims({ arch: 'vit_base', depth: 6 })).toEqual({
      embedDim: 768,
      depth: 6,
      numHeads: 12,
    });
  });

  it('rejects unknown fields, out-of-range values and inconsistent crops with every reason', () => {
    let err: unknown;
    try {
      parseRunConfig({
        model: { patchSize: 16, colour: 'blue' },
        augment: { globalCropSize: 100, localCropSize: 250 },
        optim: { lr: -1 },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const reasons = (err as ConfigError).reasons.join('\n');
    expect(reasons).toMatch(/model: .*colour/);
    expect(reasons).toMatch(/optim\.lr/);
    // Refinements run only once the shape is valid, so check crop consistency separately.
    expect(() => parseRunConfig({ augment: { globalCropSize: 100 } })).toThrow(
      /augment\.globalCropSize: must be a multiple/,
    );
    expect(() => parseRunConfig({ augment: { globalCropSize: 96, localCropSize: 112 } })).toThrow(
      /augment\.localCropSize/,
    );
    expect(() => parseRunConfig({ model: { arch: 'custom' } })).toThrow(/model\.embedDim: required/);
    expect(() => parseRunConfig({ train: { batchSize: 64, microBatchSize: 24 } })).toThrow(/microBatchSize/);
  });

  it('builds every preset, and bench-ref is exactly the reference workload', () => {
    for (const p of presetNames) expect(() => resolveRunConfig(p)).not.toThrow();
    const b = resolveRunConfig('bench-ref');
    expect(resolveModelDims(b.model)).toEqual({ embedDim: 192, depth: 6, numHeads: 3 });
    expect(b.model).toMatchObject({ patchSize: 4, gelu: 'exact', mlpRatio: 4 });
    expect(b.head).toMatchObject({ outDim: 4096, hiddenDim: 2048, bottleneckDim: 256, nlayers: 3 });
    expect(b.augment).toMatchObject({ globalCropSize: 32, localCropSize: 16, localCropsNumber: 6 });
    expect(b.train).toMatchObject({ batchSize: 64, microBatchSize: 16 });
  });

  it('applies overrides over a preset and validates the result', () => {
    const c = resolveRunConfig('fmnist-tiny', { train: { epochs: 2 }, augment: { localCropsNumber: 2 } });
    expect(c.train.epochs).toBe(2);
    expect(c.augment.localCropsNumber).toBe(2);
    expect(c.model.patchSize).toBe(4);
    expect(() => resolveRunConfig('fmnist-tiny', { augment: { localCropSize: 18 } })).toThrow(/multiple of/);
    expect(() => resolveRunConfig('nope' as never)).toThrow(/unknown preset "nope"/);
  });
});
