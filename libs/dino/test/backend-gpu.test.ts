import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/select-backend';

/**
 * Stands in for @tensorflow/tfjs-node-gpu on a GPU pod: requiring it registers a 'tensorflow'
 * backend in the same tfjs-core, whose instance reports whether TensorFlow placed ops on a GPU.
 */
const mockGpu = { present: true, loads: 0 };

jest.mock(
  '@tensorflow/tfjs-node-gpu',
  () => {
    const core = jest.requireActual('@tensorflow/tfjs-core') as typeof tf;
    const { MathBackendCPU } = jest.requireActual('@tensorflow/tfjs-backend-cpu') as {
      MathBackendCPU: new () => tf.KernelBackend;
    };
    mockGpu.loads++;
    core.registerBackend('tensorflow', () =>
      Object.assign(new MathBackendCPU(), { isGPUPackage: true, isUsingGpuDevice: mockGpu.present }),
    );
    return {};
  },
  { virtual: true },
);

describe('selectBackend with the GPU package installed', () => {
  afterEach(() => {
    delete process.env.DINOQ_BACKEND;
  });

  it('prefers tfjs-node-gpu and reports the GPU', async () => {
    const info = await selectBackend();
    expect(info).toEqual({
      name: 'tensorflow',
      kind: 'gpu',
      kernels: 'native',
      detail: '@tensorflow/tfjs-node-gpu, TensorFlow on GPU',
    });
    expect(tf.getBackend()).toBe('tensorflow');
    expect(await selectBackend()).toBe(info);
    process.env.DINOQ_BACKEND = 'tensorflow-gpu';
    expect(await selectBackend()).toMatchObject({ name: 'tensorflow', kind: 'gpu' });
    expect(mockGpu.loads).toBe(1);
  });

  it('without a GPU device: runs on TensorFlow CPU when automatic, fails when asked for the GPU', async () => {
    mockGpu.present = false;
    tf.removeBackend('tensorflow');
    tf.registerBackend('tensorflow', () =>
      Object.assign(new (jest.requireActual('@tensorflow/tfjs-backend-cpu').MathBackendCPU)(), {
        isUsingGpuDevice: false,
      }),
    );
    const info = await selectBackend('auto');
    expect(info).toMatchObject({ name: 'tensorflow', kind: 'cpu', kernels: 'native' });
    expect(info.detail).toMatch(/no usable GPU/);
    await expect(selectBackend('tensorflow-gpu')).rejects.toThrow(
      /selectBackend\(preferred\)=tensorflow-gpu: @tensorflow\/tfjs-node-gpu loaded but TensorFlow found no usable GPU/,
    );
  });
});
