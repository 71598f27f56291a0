import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';
import { fastBatchMatMul, setupWasmMatMul } from './wasm-matmul';
import { sharedCast, sharedIdentity } from './wasm-shared-buffer';
import { viewSlice } from './wasm-slice';

/**
 * Kernel overrides for the wasm backend, swapped in and out through tfjs's kernel registry
 * (tfjs-speed.md §4(a)): `BatchMatMul` always on XNNPACK, zero-copy `Identity` and same-dtype
 * `Cast`, and a `Slice` that reads through a heap view. `_FusedMatMul` stays stock: it is only
 * used for plain 2-D products, which the stock kernel already sends to XNNPACK.
 */

export const WASM_KERNEL_OVERRIDES = ['BatchMatMul', 'Identity', 'Cast', 'Slice'] as const;
export type WasmKernelOverride = (typeof WASM_KERNEL_OVERRIDES)[number];

const BACKEND = 'wasm';
const stock = new Map<WasmKernelOverride, tf.KernelConfig>();
let installed = false;

function stockKernel(name: WasmKernelOverride): tf.KernelConfig {
  const config = stock.get(name) ?? tf.getKernel(name, BACKEND);
  if (!config) {
    throw new Error(
      `wasm kernel overrides: no stock '${name}' kernel for backend 'wasm'; import @tensorflow/tfjs-backend-wasm first`,
    );
  }
  return config;
}

function overrides(): tf.KernelConfig[] {
  const fallback = (name: WasmKernelOverride): tf.KernelFunc => stockKernel(name).kernelFunc;
  return [
    {
      kernelName: 'BatchMatMul',
      backendName: BACKEND,
      kernelFunc: fastBatchMatMul(fallback('BatchMatMul')),
      // The engine reruns setup functions whenever the wasm backend becomes active again; the
      // stock kernel, still used for tiny batches, needs its own setup to follow a new instance.
      setupFunc: (backend) => {
        stockKernel('BatchMatMul').setupFunc?.(backend);
        setupWasmMatMul(backend);
      },
    },
    { kernelName: 'Identity', backendName: BACKEND, kernelFunc: sharedIdentity(fallback('Identity')) },
    { kernelName: 'Cast', backendName: BACKEND, kernelFunc: sharedCast(fallback('Cast')) },
    { kernelName: 'Slice', backendName: BACKEND, kernelFunc: viewSlice(fallback('Slice')) },
  ];
}

/**
 * Replaces the four wasm kernels. The wasm backend must already be initialised
 * (`await tf.setBackend('wasm')`). Calling it again is a no-op.
 */
export function installWasmKernels(): void {
  if (installed) return;
  const backend = tf.engine().registry[BACKEND];
  if (!backend) {
    throw new Error(
      "wasm kernel overrides: the 'wasm' backend is not initialised; await tf.setBackend('wasm') first",
    );
  }
  asWasmBackend(backend);
  for (const name of WASM_KERNEL_OVERRIDES) stock.set(name, stockKernel(name));
  setupWasmMatMul(backend);
  for (const config of overrides()) {
    tf.unregisterKernel(config.kernelName, BACKEND);
    tf.registerKernel(config);
  }
  installed = true;
}

/** Puts the stock kernels back. */
export function uninstallWasmKernels(): void {
  if (!installed) return;
  for (const name of WASM_KERNEL_OVERRIDES) {
    tf.unregisterKernel(name, BACKEND);
    tf.registerKernel(stockKernel(name));
  }
  installed = false;
}

export function wasmKernelsInstalled(): boolean {
  return installed;
}
