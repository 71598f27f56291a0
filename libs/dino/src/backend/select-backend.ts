import * as tf from '@tensorflow/tfjs-core';
import { installWasmKernels, uninstallWasmKernels, wasmKernelsInstalled } from './wasm-kernels';
import { installNativeKernels, nativeKernelsInstalled, uninstallNativeKernels } from './native-kernels';
import { nativeBlasMode } from './native-binding';

/**
 * Picks the fastest tfjs backend that loads: tfjs-node-gpu, tfjs-node, wasm, cpu.
 *
 * The native packages are optional dependencies (their install downloads a TensorFlow binary and
 * fails where that is impossible), so they are `require`d inside try/catch and skipped when
 * absent. Each registers a 'tensorflow' backend in the @tensorflow/tfjs-core it resolves, which
 * must be this one; a duplicated tfjs-core is reported rather than silently ignored.
 *
 * `DINOQ_BACKEND` (tensorflow-gpu | tensorflow | wasm | cpu | auto) or the `preferred` argument,
 * which wins over the variable, forces one backend and fails loudly when it cannot load.
 * `DINOQ_WASM_KERNELS=stock` keeps tfjs's own wasm kernels instead of the overrides.
 * On wasm, matmuls (and Exp, Erf, Transpose, leading-axis Sum) go to the native addon
 * @dinoq/native-blas (system OpenBLAS) when it was built; `DINOQ_NATIVE_BLAS=off` keeps them on
 * wasm, `on` makes a missing addon an error.
 */

export const BACKEND_CHOICES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** tfjs backend name: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  kind: 'gpu' | 'cpu';
  /**
   * 'native': TensorFlow C library; 'native-blas': wasm with our overrides and OpenBLAS matmuls;
   * 'wasm-fast': wasm with our overrides; 'stock': tfjs's own kernels.
   */
  kernels: 'native' | 'native-blas' | 'wasm-fast' | 'stock';
  /** One line for logs and /health: what was loaded, and why faster candidates were skipped. */
  detail: string;
}

const NATIVE_PACKAGES: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

interface NativeBackendFlags {
  isGPUPackage?: boolean;
  isUsingGpuDevice?: boolean;
}

let current: { request: string; info: BackendInfo } | null = null;
let pending: { request: string; promise: Promise<BackendInfo> } | null = null;

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}

function parseChoice(value: string, source: string): BackendChoice | 'auto' {
  const v = value.trim().toLowerCase();
  if (v === '' || v === 'auto') return 'auto';
  if ((BACKEND_CHOICES as readonly string[]).includes(v)) return v as BackendChoice;
  throw new Error(`${source}="${value}" is not a backend; use one of ${BACKEND_CHOICES.join(', ')} or auto`);
}

function wasmKernelMode(): 'fast' | 'stock' {
  const v = (process.env.DINOQ_WASM_KERNELS ?? '').trim().toLowerCase();
  if (v === '' || v === 'fast') return 'fast';
  if (v === 'stock') return 'stock';
  throw new Error(`DINOQ_WASM_KERNELS="${process.env.DINOQ_WASM_KERNELS}" must be "fast" or "stock"`);
}

async function activate(name: string): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    throw new Error(`backend '${name}' failed to initialise: ${firstLine(e)}`);
  }
  if (!ok) throw new Error(`backend '${name}' failed to initialise (tf.setBackend returned false)`);
  await tf.ready();
}

async function loadNative(choice: 'tensorflow-gpu' | 'tensorflow', strict: boolean): Promise<BackendInfo> {
  const pkg = NATIVE_PACKAGES[choice];
  try {
    require(pkg);
  } catch (e) {
    throw new Error(`${pkg} is not available: ${firstLine(e)}`);
  }
  if (!tf.findBackendFactory('tensorflow')) {
    throw new Error(
      `${pkg} loaded but registered no 'tensorflow' backend in this @tensorflow/tfjs-core ` +
        `(${tf.version_core}); it probably resolved a second copy of tfjs-core — align the versions`,
    );
  }
  await activate('tensorflow');
  const flags = tf.backend() as unknown as NativeBackendFlags;
  const onGpu = flags.isUsingGpuDevice === true;
  const noGpu = 'TensorFlow found no usable GPU (check CUDA/cuDNN and the visible devices)';
  if (choice === 'tensorflow-gpu' && !onGpu && strict) throw new Error(`${pkg} loaded but ${noGpu}`);
  return {
    name: 'tensorflow',
    kind: onGpu ? 'gpu' : 'cpu',
    kernels: 'native',
    // Without a GPU the GPU build still runs TensorFlow's CPU kernels, which beat wasm.
    detail: `${pkg}, TensorFlow on ${onGpu ? 'GPU' : 'CPU'}${choice === 'tensorflow-gpu' && !onGpu ? `; ${noGpu}` : ''}`,
  };
}

async function loadWasm(): Promise<BackendInfo> {
  try {
    require('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    throw new Error(`@tensorflow/tfjs-backend-wasm is not available: ${firstLine(e)}`);
  }
  await activate('wasm');
  // The native kernels sit on top of the overrides, so they come off first.
  uninstallNativeKernels();
  if (wasmKernelMode() === 'stock') {
    uninstallWasmKernels();
    return { name: 'wasm', kind: 'cpu', kernels: 'stock', detail: 'wasm (XNNPACK, SIMD), stock kernels' };
  }
  installWasmKernels();
  const overrides = 'kernel overrides: BatchMatMul, Identity, Cast, Slice';
  const native = nativeBlasMode() === 'off' ? null : installNativeKernels();
  if (native?.installed) {
    return {
      name: 'wasm',
      kind: 'cpu',
      kernels: 'native-blas',
      detail: `wasm (SIMD), ${overrides}; ${native.detail}`,
    };
  }
  if (native && nativeBlasMode() === 'on') throw new Error(`DINOQ_NATIVE_BLAS=on: ${native.reason}`);
  return {
    name: 'wasm',
    kind: 'cpu',
    kernels: 'wasm-fast',
    detail: `wasm (XNNPACK, SIMD), ${overrides}${native ? `; no native BLAS (${native.reason})` : ''}`,
  };
}

async function loadCpu(): Promise<BackendInfo> {
  try {
    require('@tensorflow/tfjs-backend-cpu');
  } catch (e) {
    throw new Error(`@tensorflow/tfjs-backend-cpu is not available: ${firstLine(e)}`);
  }
  await activate('cpu');
  return { name: 'cpu', kind: 'cpu', kernels: 'stock', detail: 'cpu (plain JavaScript kernels)' };
}

/** `strict`: the choice was asked for by name, so a GPU build without a GPU is an error. */
function load(choice: BackendChoice, strict: boolean): Promise<BackendInfo> {
  if (choice === 'tensorflow-gpu' || choice === 'tensorflow') return loadNative(choice, strict);
  return choice === 'wasm' ? loadWasm() : loadCpu();
}

async function select(request: BackendChoice | 'auto', source: string): Promise<BackendInfo> {
  if (request !== 'auto') {
    try {
      return await load(request, true);
    } catch (e) {
      throw new Error(`${source}=${request}: ${firstLine(e)}`);
    }
  }
  const skipped: string[] = [];
  for (const choice of BACKEND_CHOICES) {
    try {
      const info = await load(choice, false);
      return skipped.length ? { ...info, detail: `${info.detail}; skipped ${skipped.join('; ')}` } : info;
    } catch (e) {
      skipped.push(`${choice} (${firstLine(e)})`);
    }
  }
  throw new Error(`no tfjs backend could be loaded: ${skipped.join('; ')}`);
}

/**
 * Activates the backend and returns what was chosen. Idempotent: a repeated call with the same
 * request returns the same object without reloading, as long as that backend is still active.
 */
export async function selectBackend(preferred?: string): Promise<BackendInfo> {
  const source = preferred !== undefined ? 'selectBackend(preferred)' : 'DINOQ_BACKEND';
  const request = parseChoice(preferred ?? process.env.DINOQ_BACKEND ?? '', source);
  const kernelMode = wasmKernelMode();
  const key = `${request}|${kernelMode}|${nativeBlasMode()}`;
  if (current && current.request === key && tf.getBackend() === current.info.name) {
    const { kernels } = current.info;
    const stillFast =
      (kernels !== 'wasm-fast' && kernels !== 'native-blas') ||
      (wasmKernelsInstalled() && (kernels !== 'native-blas' || nativeKernelsInstalled()));
    if (stillFast) return current.info;
  }
  if (pending && pending.request === key) return pending.promise;
  const promise = select(request, source).then(
    (info) => {
      current = { request: key, info };
      return info;
    },
    (e: unknown) => {
      current = null;
      throw e;
    },
  );
  pending = { request: key, promise };
  try {
    return await promise;
  } finally {
    if (pending?.promise === promise) pending = null;
  }
}
