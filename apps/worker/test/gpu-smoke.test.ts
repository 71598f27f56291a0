import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type { BackendInfo } from '@dinoq/dino';
import {
  GpuSmokeError,
  needsGpuSmokeCheck,
  runGpuSmokeCheck,
  tfjsGpuProbe,
  type GpuSmokeProbe,
} from '../src/gpu-smoke';

/** A probe that passes unless a field is overridden. */
function fakeProbe(overrides: Partial<GpuSmokeProbe> = {}): GpuSmokeProbe {
  return {
    devices: () => ['CPU', 'GPU'],
    placements: () => ['GPU', 'GPU'],
    matmul: () => Promise.resolve(0),
    trainStep: () => Promise.resolve(4.2),
    ...overrides,
  };
}

const backend = (kind: 'gpu' | 'cpu', name = 'tensorflow'): BackendInfo => ({
  name,
  kind,
  kernels: 'native',
  detail: '',
});

describe('GPU smoke check: the decision', () => {
  it('passes a GPU that lists, places and computes right', async () => {
    const result = await runGpuSmokeCheck(fakeProbe());
    expect(result).toMatchObject({
      devices: ['CPU', 'GPU'],
      placements: ['GPU', 'GPU'],
      matmulError: 0,
      loss: 4.2,
    });
    // tfjs-node reports no placement: the device list and the numbers decide.
    await expect(runGpuSmokeCheck(fakeProbe({ placements: () => null }))).resolves.toMatchObject({
      placements: null,
    });
  });

  it('refuses when TensorFlow registered no GPU device, before running anything', async () => {
    const matmul = jest.fn(() => Promise.resolve(0));
    const check = runGpuSmokeCheck(fakeProbe({ devices: () => ['CPU'], matmul }));
    await expect(check).rejects.toThrow(GpuSmokeError);
    await expect(check).rejects.toThrow(
      /^GPU smoke check failed, refusing work: TensorFlow registered no GPU device \(devices: CPU\); check the NVIDIA driver/,
    );
    expect(matmul).not.toHaveBeenCalled();
  });

  it('refuses when the ops were placed on the CPU', async () => {
    await expect(runGpuSmokeCheck(fakeProbe({ placements: () => ['GPU', 'CPU', 'CPU'] }))).rejects.toThrow(
      /placed the check's ops on GPU, CPU, not only on the GPU/,
    );
  });

  it('refuses wrong numbers and kernels that throw, naming what failed', async () => {
    await expect(runGpuSmokeCheck(fakeProbe({ matmul: () => Promise.resolve(3) }))).rejects.toThrow(
      /a 64×64 matmul is off by 3 \(tolerance 0\.001\)/,
    );
    await expect(runGpuSmokeCheck(fakeProbe({ matmul: () => Promise.resolve(NaN) }))).rejects.toThrow(
      /off by NaN/,
    );
    const noKernel = () => Promise.reject(new Error('CUDA_ERROR_NO_BINARY_FOR_GPU'));
    await expect(runGpuSmokeCheck(fakeProbe({ trainStep: noKernel }))).rejects.toThrow(
      /a training step threw on the GPU backend: CUDA_ERROR_NO_BINARY_FOR_GPU/,
    );
    await expect(runGpuSmokeCheck(fakeProbe({ trainStep: () => Promise.resolve(Infinity) }))).rejects.toThrow(
      /a training step gave a loss of Infinity/,
    );
  });

  it('runs for native TensorFlow meant for a GPU only', () => {
    expect(needsGpuSmokeCheck(undefined, backend('gpu'))).toBe(true);
    expect(needsGpuSmokeCheck('gpu', backend('cpu'))).toBe(true);
    // The GPU package without a GPU, run as a CPU worker by choice: TensorFlow's CPU kernels.
    expect(needsGpuSmokeCheck(undefined, backend('cpu'))).toBe(false);
    expect(needsGpuSmokeCheck('cpu', backend('cpu'))).toBe(false);
    expect(needsGpuSmokeCheck('gpu', backend('cpu', 'wasm'))).toBe(false);
  });
});

describe('GPU smoke check: the work, on the cpu backend', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('runs the matmul and the training step exactly and frees their tensors', async () => {
    const probe = tfjsGpuProbe();
    // The cpu backend is no TensorFlow: it lists no GPU, so the real check refuses it.
    expect(probe.devices()).toEqual(['CPU']);
    await expect(runGpuSmokeCheck(probe)).rejects.toThrow(/TensorFlow registered no GPU device/);
    // Its work, judged as if on a GPU.
    const asIfOnGpu = { ...probe, devices: () => ['CPU', 'GPU'] };
    const result = await runGpuSmokeCheck(asIfOnGpu);
    expect(result.matmulError).toBe(0);
    expect(Number.isFinite(result.loss)).toBe(true);
    expect(result.placements).toBeNull();
    // The first step fills the position-embedding cache (kept on purpose); a second one leaks nothing.
    const warm = tf.memory().numTensors;
    expect((await runGpuSmokeCheck(asIfOnGpu)).loss).toBe(result.loss);
    expect(tf.memory().numTensors).toBe(warm);
  });
});
