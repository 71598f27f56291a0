import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../src/backend/select-backend';
import { nativeBlasBinding } from '../src/backend/native-binding';
import { nativeKernelsInstalled } from '../src/backend/native-kernels';
import { wasmKernelsInstalled } from '../src/backend/wasm-kernels';

// A machine where the addon was never built: the package loads but finds no .node file.
jest.mock('@dinoq/native-blas', () => ({
  loadNativeBlas: () => ({
    blas: null,
    reason: 'cannot load build/Release/dinoq_native_blas.node: not found',
  }),
}));
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

describe('without the native addon', () => {
  const saved = process.env.DINOQ_NATIVE_BLAS;
  afterEach(() => {
    if (saved === undefined) delete process.env.DINOQ_NATIVE_BLAS;
    else process.env.DINOQ_NATIVE_BLAS = saved;
  });

  it('trains on the wasm-fast kernels and says why', async () => {
    delete process.env.DINOQ_NATIVE_BLAS;
    expect(nativeBlasBinding()).toEqual({
      blas: null,
      reason: 'cannot load build/Release/dinoq_native_blas.node: not found',
    });
    const info = await selectBackend('wasm');
    expect(info).toMatchObject({ name: 'wasm', kernels: 'wasm-fast' });
    expect(info.detail).toMatch(/no native BLAS \(cannot load .*dinoq_native_blas\.node/);
    expect(wasmKernelsInstalled()).toBe(true);
    expect(nativeKernelsInstalled()).toBe(false);
    expect(tf.tidy(() => tf.matMul(tf.ones([64, 32]), tf.ones([32, 16])).dataSync()[0])).toBe(32);
  });

  it('fails loudly when DINOQ_NATIVE_BLAS=on', async () => {
    process.env.DINOQ_NATIVE_BLAS = 'on';
    await expect(selectBackend('wasm')).rejects.toThrow(
      /DINOQ_NATIVE_BLAS=on: cannot load .*dinoq_native_blas\.node/,
    );
  });
});
