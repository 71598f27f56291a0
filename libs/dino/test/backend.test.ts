import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/select-backend';
import { wasmKernelsInstalled } from '../src/backend/wasm-kernels';

// tfjs-node and tfjs-node-gpu are optional dependencies that fail to install where their
// TensorFlow binary cannot be downloaded; make them missing here whatever the machine has, so the
// automatic order falls through to wasm. The GPU path is covered by backend-gpu.test.ts.
jest.mock(
  '@tensorflow/tfjs-node-gpu',
  () => {
    throw new Error("Cannot find module '@tensorflow/tfjs-node-gpu'");
  },
  { virtual: true },
);
jest.mock(
  '@tensorflow/tfjs-node',
  () => {
    throw new Error("Cannot find module '@tensorflow/tfjs-node'");
  },
  { virtual: true },
);

describe('selectBackend', () => {
  const saved = {
    backend: process.env.DINOQ_BACKEND,
    kernels: process.env.DINOQ_WASM_KERNELS,
    native: process.env.DINOQ_NATIVE_BLAS,
  };

  beforeEach(() => {
    delete process.env.DINOQ_BACKEND;
    delete process.env.DINOQ_WASM_KERNELS;
    // The native BLAS kernels have their own tests; these check the wasm-only selection.
    process.env.DINOQ_NATIVE_BLAS = 'off';
  });

  afterAll(() => {
    for (const [key, value] of [
      ['DINOQ_BACKEND', saved.backend],
      ['DINOQ_WASM_KERNELS', saved.kernels],
      ['DINOQ_NATIVE_BLAS', saved.native],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  it('falls through the missing native packages to wasm with the kernel overrides', async () => {
    const info = await selectBackend();
    expect(info).toMatchObject({ name: 'wasm', kind: 'cpu', kernels: 'wasm-fast' });
    expect(info.detail).toMatch(/skipped tensorflow-gpu \(@tensorflow\/tfjs-node-gpu is not available/);
    expect(info.detail).toMatch(/tensorflow \(@tensorflow\/tfjs-node is not available/);
    expect(tf.getBackend()).toBe('wasm');
    expect(wasmKernelsInstalled()).toBe(true);
    expect(await selectBackend()).toBe(info);
  });

  it('honours DINOQ_BACKEND and DINOQ_WASM_KERNELS', async () => {
    process.env.DINOQ_BACKEND = 'cpu';
    expect(await selectBackend()).toEqual({
      name: 'cpu',
      kind: 'cpu',
      kernels: 'stock',
      detail: 'cpu (plain JavaScript kernels)',
    });
    expect(tf.getBackend()).toBe('cpu');

    process.env.DINOQ_BACKEND = 'wasm';
    process.env.DINOQ_WASM_KERNELS = 'stock';
    expect(await selectBackend()).toMatchObject({ name: 'wasm', kernels: 'stock' });
    expect(wasmKernelsInstalled()).toBe(false);

    delete process.env.DINOQ_WASM_KERNELS;
    expect(await selectBackend()).toMatchObject({ name: 'wasm', kernels: 'wasm-fast' });
    expect(wasmKernelsInstalled()).toBe(true);
  });

  it('lets the argument win over the environment', async () => {
    process.env.DINOQ_BACKEND = 'wasm';
    expect(await selectBackend('cpu')).toMatchObject({ name: 'cpu' });
    expect(await selectBackend()).toMatchObject({ name: 'wasm' });
  });

  it('re-selects when someone else switched the backend in between', async () => {
    const first = await selectBackend('wasm');
    await tf.setBackend('cpu');
    const again = await selectBackend('wasm');
    expect(again).toEqual(first);
    expect(tf.getBackend()).toBe('wasm');
  });

  it('fails loudly when the forced backend cannot load or is unknown', async () => {
    process.env.DINOQ_BACKEND = 'tensorflow';
    await expect(selectBackend()).rejects.toThrow(
      /DINOQ_BACKEND=tensorflow: @tensorflow\/tfjs-node is not available/,
    );
    await expect(selectBackend('tensorflow-gpu')).rejects.toThrow(
      /@tensorflow\/tfjs-node-gpu is not available/,
    );
    process.env.DINOQ_BACKEND = 'webgl';
    await expect(selectBackend()).rejects.toThrow(/DINOQ_BACKEND="webgl" is not a backend; use one of/);
    delete process.env.DINOQ_BACKEND;
    process.env.DINOQ_WASM_KERNELS = 'turbo';
    await expect(selectBackend('wasm')).rejects.toThrow(
      /DINOQ_WASM_KERNELS="turbo" must be "fast" or "stock"/,
    );
  });
});
