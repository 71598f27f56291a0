import { parseRunConfig, type RunConfig, type RunConfigInput } from './run-config';

/**
 * Named starting points. Each is a partial config merged over the schema defaults,
 * so every value not named here is the spec's default.
 */
export const presets = {
  /** The paper's ViT-S/16 recipe (spec §9 defaults: 2×224 + 8×96 crops, K = 65536). */
  vit_small_p16: {
    model: { arch: 'vit_small', patchSize: 16 },
  },
  /**
   * The reference configuration the CPU speed goal is measured on: a fixed amount of work,
   * whatever fmnist-tiny becomes. ViT patch 4, dim 192, depth 6, 3 heads, exact GELU,
   * head 2048-2048-256 → 4096, 2 × 32 px + 6 × 16 px crops, batch 64.
   * Micro-batches of 16 change nothing in the result (accumulation is exact) and are the
   * fastest measured choice: as fast as 32 with native kernels at two thirds of the memory,
   * and 1.7× faster on pure WASM with two replicas, whose 32-image passes slow each other down.
   */
  'bench-ref': {
    model: { arch: 'custom', patchSize: 4, embedDim: 192, depth: 6, numHeads: 3, gelu: 'exact' },
    head: { outDim: 4096, hiddenDim: 2048, bottleneckDim: 256, nlayers: 3 },
    augment: { globalCropSize: 32, localCropSize: 16, localCropsNumber: 6 },
    train: { batchSize: 64, microBatchSize: 16 },
  },
  /**
   * Sized for a 2-core machine on Fashion-MNIST (28 px, upsampled to 32 px global crops).
   * Deviations from the spec defaults, and why: a small ViT and head so an epoch takes
   * minutes, not hours; K = 4096 and a higher base lr / shorter warmup because runs are
   * short (spec §20: small data wants smaller K); teacher momentum 0.99 so the EMA teacher
   * follows within a few hundred steps instead of thousands.
   */
  'fmnist-tiny': {
    model: { arch: 'custom', patchSize: 4, embedDim: 128, depth: 4, numHeads: 4, dropPathRate: 0.05 },
    head: { outDim: 4096, hiddenDim: 1024, bottleneckDim: 128, nlayers: 3 },
    optim: { lr: 0.002, warmupEpochs: 1, momentumTeacher: 0.99, minLr: 1e-5 },
    augment: { globalCropSize: 32, localCropSize: 16, localCropsNumber: 4 },
    train: { batchSize: 64, epochs: 10, stepsPerShard: 50 },
  },
  /**
   * The recipe for Fashion-MNIST on 2 CPU cores (README, "A recipe for small images"): a ViT of
   * width 64 on native 28 px crops (7 × 7 patches) and 12 px local crops sees ~3.5× the images of
   * fmnist-tiny per second, which on a short budget decides most of the score; K = 1024; base lr
   * 0.004 (a sweep over 0.002 / 0.004 / 0.008); every schedule in fractions of the run and the
   * last layer never frozen, so any run length works.
   */
  'fmnist-fast': {
    model: { arch: 'custom', patchSize: 4, embedDim: 64, depth: 4, numHeads: 2, dropPathRate: 0.05 },
    head: { outDim: 1024, hiddenDim: 512, bottleneckDim: 128, nlayers: 3 },
    optim: {
      lr: 0.004,
      minLr: 1e-5,
      momentumTeacher: 0.99,
      warmupFor: { fraction: 0.1 },
      freezeLastLayerFor: { steps: 0 },
    },
    augment: { globalCropSize: 28, localCropSize: 12, localCropsNumber: 4 },
    train: { batchSize: 64, epochs: 10, stepsPerShard: 50 },
  },
} satisfies Record<string, RunConfigInput>;

export type PresetName = keyof typeof presets;
export const presetNames = Object.keys(presets) as PresetName[];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep merge where arrays and scalars in `over` replace those in `base`. */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(over)) return (over === undefined ? base : over) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeConfig(out[k], v);
  return out as T;
}

/** A preset (or the plain defaults) with overrides applied, validated. */
export function resolveRunConfig(preset: PresetName | undefined, overrides: unknown = {}): RunConfig {
  if (preset !== undefined && !(preset in presets)) {
    throw new Error(`unknown preset "${String(preset)}" (known: ${presetNames.join(', ')})`);
  }
  const base = (preset ? presets[preset] : {}) as Json;
  return parseRunConfig(mergeConfig(base, overrides));
}
