import {
  effectiveMicroBatch,
  estimateStepCost,
  forwardFlops,
  parameterCount,
  parseRunConfig,
  resolveRunConfig,
  tokensPerCrop,
  trainStepFlops,
} from '../src';

const GiB = 1024 ** 3;

/** The first config: ViT-B/16 on 2 + 32 crops of 1024 px, K = 262,144, batch 8,192. */
const hugeCrops = {
  model: { arch: 'vit_base', patchSize: 16 },
  head: { outDim: 262_144 },
  augment: { globalCropSize: 1024, localCropSize: 1024, localCropsNumber: 32 },
  train: { batchSize: 8192 },
};
/** The second config: dim 4,096, depth 48, patch 1 on the default crops. */
const hugeModel = { model: { arch: 'custom', embedDim: 4096, depth: 48, numHeads: 32, patchSize: 1 } };

describe('parameterCount', () => {
  it('counts fmnist-tiny by hand (D 128, depth 4, MLP 512, head 128-1024-1024-128 → 4096)', () => {
    const embedding = 128 + 65 * 128 + (48 * 128 + 128); // [CLS], 8×8+1 positions, patch projection
    const block = 2 * 256 + 3 * (128 * 128 + 128) + (128 * 128 + 128) + (128 * 512 + 512) + (512 * 128 + 128);
    const backbone = embedding + 4 * block + 256;
    const head = 128 * 1024 + 1024 + (1024 * 1024 + 1024) + (1024 * 128 + 128) + 4096 + 128 * 4096;
    expect(block).toBe(198_272);
    expect(parameterCount(resolveRunConfig('fmnist-tiny'))).toEqual({
      backbone,
      head,
      student: 2_649_344,
      // weight_g stays at 1 with normLastLayer: no gradient, no moments.
      trainable: 2_649_344 - 4096,
    });
  });

  it('matches the published ViT-S/16 backbone (timm: 22,050,664 with its 385,000-parameter classifier)', () => {
    const count = parameterCount(resolveRunConfig('vit_small_p16'));
    expect(count.backbone).toBe(22_050_664 - 385_000);
    // DINO head 384-2048-2048-256 → 65536 with weight-normalised prototypes.
    expect(count.head).toBe(384 * 2048 + 2048 + 2048 * 2048 + 2048 + 2048 * 256 + 256 + 65536 + 256 * 65536);
  });

  it('leaves the q/k/v biases out without qkvBias, and g trains without normLastLayer', () => {
    const base = parameterCount(resolveRunConfig('fmnist-tiny'));
    const noBias = parameterCount(resolveRunConfig('fmnist-tiny', { model: { qkvBias: false } }));
    expect(base.backbone - noBias.backbone).toBe(4 * 3 * 128);
    const free = parameterCount(resolveRunConfig('fmnist-tiny', { head: { normLastLayer: false } }));
    expect(free.trainable).toBe(free.student);
  });
});

describe('trainStepFlops', () => {
  it('counts fmnist-tiny by hand: 1.297 GFLOP per image', () => {
    const config = resolveRunConfig('fmnist-tiny');
    const head = 2 * 128 * 4096 + 2 * (128 * 1024 + 1024 * 1024 + 1024 * 128);
    // 32 px: 64 patches + [CLS]; per block 2·65·(4D² + 2·D·512) + 4·65²·D.
    const global =
      2 * 64 * 48 * 128 + 4 * (2 * 65 * (4 * 128 * 128 + 2 * 128 * 512) + 4 * 65 * 65 * 128) + head;
    const local =
      2 * 16 * 48 * 128 + 4 * (2 * 17 * (4 * 128 * 128 + 2 * 128 * 512) + 4 * 17 * 17 * 128) + head;
    expect(forwardFlops(config, 1, 32)).toBe(global);
    expect(forwardFlops(config, 1, 16)).toBe(local);
    const perImage = 3 * (2 * global + 4 * local) + 2 * global;
    expect(perImage).toBe(1_297_129_472);
    expect(trainStepFlops(config)).toBe(64 * perImage);
    expect(estimateStepCost(config).flopsPerImage).toBe(perImage);
  });

  it('gives the 313.6 GFLOP per step the README quotes for bench-ref', () => {
    expect(trainStepFlops(resolveRunConfig('bench-ref')) / 1e9).toBeCloseTo(313.57, 2);
  });
});

describe('estimateStepCost', () => {
  it('adds up fmnist-tiny by hand (batch 64 in one pass)', () => {
    const config = resolveRunConfig('fmnist-tiny');
    const cost = estimateStepCost(config);
    expect(cost.microBatchSize).toBe(64);
    // Per image: 2 crops of 65 tokens + 4 of 17; 2·65² + 4·17² attention entries per head; 2·32²·3 + 4·16²·3 pixels.
    const tokens = 2 * 65 + 4 * 17;
    const squared = 2 * 65 * 65 + 4 * 17 * 17;
    const pixels = 2 * 32 * 32 * 3 + 4 * 16 * 16 * 3;
    const perToken = 8 * 128 + 2 * 512;
    const headRow = 128 + 2 * 2 * 1024 + 128 + 1;
    const prototypes = 2 * 128 * 4096;
    expect(cost.memoryBytes).toEqual({
      student: 4 * 2_649_344,
      teacher: 4 * 2_649_344,
      gradients: 4 * 2 * 2_645_248,
      optimizer: 4 * 2 * 2_645_248,
      activations: 4 * (64 * (pixels + 4 * tokens * perToken + 6 * headRow) + prototypes),
      attentionMaps: 4 * 64 * 4 * squared * (4 + 2),
      headOutputs: 4 * 64 * (3 * 6 + 2 * 2) * 4096,
      inputBatch: 4 * 64 * pixels,
      total: 576_441_856,
    });
  });

  it('lowers activations, not the state or the input batch, with micro-batches', () => {
    const whole = estimateStepCost(resolveRunConfig('fmnist-tiny'));
    const micro = estimateStepCost(resolveRunConfig('fmnist-tiny', { train: { microBatchSize: 16 } }));
    expect(micro.microBatchSize).toBe(16);
    expect(micro.memoryBytes.attentionMaps * 4).toBe(whole.memoryBytes.attentionMaps);
    expect(micro.memoryBytes.headOutputs * 4).toBe(whole.memoryBytes.headOutputs);
    expect(micro.memoryBytes.activations).toBeLessThan(whole.memoryBytes.activations / 3);
    for (const key of ['student', 'teacher', 'gradients', 'optimizer', 'inputBatch'] as const)
      expect(micro.memoryBytes[key]).toBe(whole.memoryBytes[key]);
    expect(micro.flopsPerStep).toBe(whole.flopsPerStep);
  });

  it('stays within sane bounds for the paper recipe and grows with crops and batch', () => {
    const small = estimateStepCost(resolveRunConfig('vit_small_p16'));
    // ViT-S/16, 2×224 + 8×96 crops, 64 images in one pass: tens of GiB at most, ~114 GFLOP per image.
    expect(small.memoryBytes.total / GiB).toBeGreaterThan(5);
    expect(small.memoryBytes.total / GiB).toBeLessThan(40);
    expect(small.flopsPerImage / 1e9).toBeGreaterThan(100);
    expect(small.flopsPerImage / 1e9).toBeLessThan(130);
    const bigger = estimateStepCost(resolveRunConfig('vit_small_p16', { augment: { localCropsNumber: 10 } }));
    expect(bigger.memoryBytes.total).toBeGreaterThan(small.memoryBytes.total);
    const batch = estimateStepCost(resolveRunConfig('vit_small_p16', { train: { batchSize: 128 } }));
    expect(batch.memoryBytes.activations).toBeGreaterThan(1.9 * small.memoryBytes.activations);
  });

  it('puts both configs of the issue far beyond any machine', () => {
    for (const overrides of [hugeCrops, hugeModel]) {
      const cost = estimateStepCost(parseRunConfig(overrides));
      expect(cost.memoryBytes.total / GiB).toBeGreaterThan(1024 * 1024);
      expect(cost.flopsPerStep / 1e9).toBeGreaterThan(1e8);
    }
    // The 48-block, 4096-wide model alone (weights, teacher, gradients, moments) exceeds 200 GiB.
    const state = estimateStepCost(parseRunConfig(hugeModel)).memoryBytes;
    expect((state.student + state.teacher + state.gradients + state.optimizer) / GiB).toBeGreaterThan(200);
  });
});

describe('helpers', () => {
  it('counts tokens and the micro-batch as the training step does', () => {
    expect(tokensPerCrop(224, 16)).toBe(197);
    expect(effectiveMicroBatch({ batchSize: 64, microBatchSize: 0 })).toBe(64);
    expect(effectiveMicroBatch({ batchSize: 64, microBatchSize: 16 })).toBe(16);
  });
});
