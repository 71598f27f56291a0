import * as tf from '@tensorflow/tfjs-core';
import { parseRunConfig } from '@dinoq/config';
import { DinoTrainer, type BackendInfo } from '@dinoq/dino';
import type { DeviceClass } from '@dinoq/jobs';

/** What the start-up check can observe of the backend; the tfjs one is tfjsGpuProbe. */
export interface GpuSmokeProbe {
  /** Device types TensorFlow registered, as it names them ('CPU', 'GPU'). */
  devices(): readonly string[];
  /** Device types the check's ops ran on where the backend reports placement; null where it cannot. */
  placements(): readonly string[] | null;
  /** Largest absolute difference between a small matmul on the backend and the same product in JavaScript. */
  matmul(): Promise<number>;
  /** The loss of one DINO training step of a tiny ViT on the backend. */
  trainStep(): Promise<number>;
}

export interface GpuSmokeResult {
  devices: readonly string[];
  placements: readonly string[] | null;
  matmulError: number;
  loss: number;
  ms: number;
}

/** Raised when the GPU cannot be trusted with jobs; its message says what was seen and what to check. */
export class GpuSmokeError extends Error {
  override readonly name = 'GpuSmokeError';
  constructor(reason: string) {
    super(`GPU smoke check failed, refusing work: ${reason}`);
  }
}

/** Small integers, exact in TF32 and fp16 alike, so any GPU matmul mode must match exactly. */
const MATMUL_SIDE = 64;
const MATMUL_TOLERANCE = 1e-3;
const SETUP_HINT =
  'check the NVIDIA driver, the CUDA and cuDNN libraries of the image, and the visible devices';

/** The GPU worker's start-up check: only a native TensorFlow backend meant to run on a GPU needs it. */
export function needsGpuSmokeCheck(deviceClass: DeviceClass | undefined, backend: BackendInfo): boolean {
  return backend.name === 'tensorflow' && (backend.kind === 'gpu' || deviceClass === 'gpu');
}

async function attempt<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    // A GPU whose compute capability the TensorFlow build lacks fails here ("no kernel image").
    throw new GpuSmokeError(`${what} threw on the GPU backend: ${(error as Error).message}`);
  }
}

/**
 * Runs a small matmul and one training step, and refuses (GpuSmokeError) when TensorFlow
 * registered no GPU device, placed the check's ops on the CPU, or computed wrong numbers.
 */
export async function runGpuSmokeCheck(probe: GpuSmokeProbe): Promise<GpuSmokeResult> {
  const started = performance.now();
  const devices = probe.devices();
  if (!devices.includes('GPU')) {
    throw new GpuSmokeError(
      `TensorFlow registered no GPU device (devices: ${devices.join(', ') || 'none'}); ${SETUP_HINT}`,
    );
  }
  const matmulError = await attempt('a matmul', () => probe.matmul());
  if (!(matmulError <= MATMUL_TOLERANCE)) {
    throw new GpuSmokeError(
      `a ${MATMUL_SIDE}×${MATMUL_SIDE} matmul is off by ${matmulError} (tolerance ${MATMUL_TOLERANCE}); ${SETUP_HINT}`,
    );
  }
  const loss = await attempt('a training step', () => probe.trainStep());
  if (!Number.isFinite(loss))
    throw new GpuSmokeError(`a training step gave a loss of ${loss}; ${SETUP_HINT}`);
  const placements = probe.placements();
  if (placements !== null && !placements.every((device) => device === 'GPU')) {
    throw new GpuSmokeError(
      `TensorFlow placed the check's ops on ${[...new Set(placements)].join(', ')}, not only on the GPU`,
    );
  }
  return { devices, placements, matmulError, loss, ms: Math.round(performance.now() - started) };
}

/** Integers in [-2, 2] in a fixed order that no row or column repeats. */
function smallIntegers(count: number, stride: number): number[] {
  return Array.from({ length: count }, (_, i) => ((i * stride + (i >> 6)) % 5) - 2);
}

async function matmulError(): Promise<number> {
  const n = MATMUL_SIDE;
  const a = smallIntegers(n * n, 7);
  const b = smallIntegers(n * n, 3);
  const product = tf.tidy(() => tf.matMul(tf.tensor2d(a, [n, n]), tf.tensor2d(b, [n, n])));
  const got = await product.data();
  product.dispose();
  let worst = 0;
  for (let i = 0; i < n; i += 1) {
    for (let j = 0; j < n; j += 1) {
      let expected = 0;
      for (let k = 0; k < n; k += 1) expected += a[i * n + k] * b[k * n + j];
      worst = Math.max(worst, Math.abs(got[i * n + j] - expected));
    }
  }
  return worst;
}

/** Patches, attention, MLP, DINO head and loss, backward pass and AdamW: the kernels a run uses. */
const SMOKE_CONFIG = parseRunConfig({
  model: { arch: 'custom', patchSize: 4, embedDim: 16, depth: 1, numHeads: 2, dropPathRate: 0 },
  head: { outDim: 32, hiddenDim: 24, bottleneckDim: 8 },
  optim: { warmupEpochs: 0, freezeLastLayer: 0 },
  train: { batchSize: 2, epochs: 1 },
  augment: { globalCropSize: 8, localCropSize: 4, localCropsNumber: 1 },
});

async function trainStepLoss(): Promise<number> {
  const config = SMOKE_CONFIG;
  const { batchSize } = config.train;
  const { globalCropSize, localCropSize, localCropsNumber } = config.augment;
  const sizes = [globalCropSize, globalCropSize, ...Array<number>(localCropsNumber).fill(localCropSize)];
  const views = sizes.map((size, view) =>
    Float32Array.from({ length: batchSize * size * size * 3 }, (_, i) => Math.sin(i * 0.37 + view)),
  );
  const trainer = DinoTrainer.create(config, batchSize);
  try {
    return trainer.trainStep({ views, sizes, batch: batchSize, channels: 3 }).loss;
  } finally {
    trainer.dispose();
  }
}

/**
 * The probe over the active tfjs backend. tfjs-node lists TensorFlow's devices when it loads and
 * exposes only whether a GPU was among them (`isUsingGpuDevice`); it runs every op without naming a
 * device and reports no placement, so `placements` is null there and the device list, the numbers
 * and the absence of errors are what the check goes on.
 */
export function tfjsGpuProbe(): GpuSmokeProbe {
  return {
    devices: () => {
      const flags = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
      return flags.isUsingGpuDevice === true ? ['CPU', 'GPU'] : ['CPU'];
    },
    placements: () => null,
    matmul: matmulError,
    trainStep: () => Promise.resolve().then(trainStepLoss),
  };
}
