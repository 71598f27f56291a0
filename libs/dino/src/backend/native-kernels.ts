import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { asWasmBackend } from './wasm-internals';
import { nativeBlasBinding, type NativeBlasBinding } from './native-binding';
import { nativeBatchMatMul, nativeFusedMatMul } from './native-matmul';
import { nativeUnary } from './native-unary';
import { nativeTranspose } from './native-transpose';
import { nativeSum } from './native-reduce';

/**
 * Registers the OpenBLAS matmuls as the wasm backend's `BatchMatMul` and `_FusedMatMul`, plus
 * the addon's vectorised `Exp` and `Erf`, tiled `Transpose` and leading-axis `Sum`, on top of
 * whatever is registered now (normally the wasm-fast overrides). That previous kernel stays the
 * fallback for tiny or unsupported cases and comes back on uninstall.
 *
 * OpenBLAS picks its kernels from the CPU at load time. Debian's 0.3.21 recognises this AMD
 * AVX-512 machine (it reports Cooperlake) and reaches ~95 GFLOP/s on one core, so no
 * OPENBLAS_CORETYPE is set here; where an older OpenBLAS falls back to generic kernels, set that
 * variable in the benchmark command, never in code or tests.
 */

export const NATIVE_KERNELS = ['BatchMatMul', '_FusedMatMul', 'Exp', 'Erf', 'Transpose', 'Sum'] as const;
const BACKEND = 'wasm';

export interface NativeKernelOptions {
  /** OpenBLAS threads for this process (shared by all its worker threads); default: `defaultBlasThreads()`. */
  threads?: number;
}

export type NativeInstallResult =
  | { installed: true; threads: number; corename: string; detail: string }
  | { installed: false; reason: string };

const previous = new Map<string, tf.KernelConfig>();
const ours = new Map<string, tf.KernelConfig>();
let active: { blas: NativeBlasBinding; threads: number; corename: string } | null = null;

/** `DINOQ_BLAS_THREADS` when set (e.g. 1 on a machine shared with other jobs), else every core. */
export function defaultBlasThreads(): number {
  const raw = process.env.DINOQ_BLAS_THREADS;
  if (raw === undefined || raw.trim() === '') return Math.max(1, os.availableParallelism());
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`DINOQ_BLAS_THREADS="${raw}" must be a positive integer`);
  return n;
}

function currentKernel(name: string): tf.KernelConfig {
  const config = tf.getKernel(name, BACKEND);
  if (!config) {
    throw new Error(
      `native kernels: no '${name}' kernel for backend 'wasm'; import @tensorflow/tfjs-backend-wasm first`,
    );
  }
  return config;
}

function configs(blas: NativeBlasBinding): tf.KernelConfig[] {
  const wrap = (name: string, make: (blas: NativeBlasBinding, prev: tf.KernelFunc) => tf.KernelFunc) => {
    const prev = previous.get(name)!;
    return {
      kernelName: name,
      backendName: BACKEND,
      kernelFunc: make(blas, prev.kernelFunc),
      // The previous kernel still runs for small products, so its setup must follow a new backend instance.
      setupFunc: prev.setupFunc,
    } satisfies tf.KernelConfig;
  };
  return [
    wrap('BatchMatMul', nativeBatchMatMul),
    wrap('_FusedMatMul', nativeFusedMatMul),
    wrap('Exp', (b, prev) => nativeUnary('Exp', b, prev)),
    wrap('Erf', (b, prev) => nativeUnary('Erf', b, prev)),
    wrap('Transpose', nativeTranspose),
    wrap('Sum', nativeSum),
  ];
}

function checkThreads(threads: number): number {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`native kernels: threads must be a positive integer, got ${threads}`);
  }
  return threads;
}

/**
 * Installs the native kernels when the addon loads (and `DINOQ_NATIVE_BLAS` is not `off`);
 * otherwise leaves the registry alone and says why. Calling it again only updates the threads.
 * The wasm backend must be initialised first.
 */
export function installNativeKernels(opts: NativeKernelOptions = {}): NativeInstallResult {
  const threads = checkThreads(opts.threads ?? defaultBlasThreads());
  if (nativeKernelsInstalled() && active) {
    active.blas.setThreads(threads);
    active.threads = threads;
    return { installed: true, threads, corename: active.corename, detail: describe() };
  }
  const backend = tf.engine().registry[BACKEND];
  if (!backend) {
    throw new Error(
      "native kernels: the 'wasm' backend is not initialised; await tf.setBackend('wasm') first",
    );
  }
  asWasmBackend(backend);
  const found = nativeBlasBinding();
  if (!found.blas) return { installed: false, reason: found.reason };
  const blas = found.blas;
  blas.setThreads(threads);
  for (const name of NATIVE_KERNELS) previous.set(name, currentKernel(name));
  for (const config of configs(blas)) {
    tf.unregisterKernel(config.kernelName, BACKEND);
    tf.registerKernel(config);
    ours.set(config.kernelName, config);
  }
  active = { blas, threads, corename: blas.info().corename };
  return { installed: true, threads, corename: active.corename, detail: describe() };
}

/** Puts back the kernels that were registered before `installNativeKernels`. */
export function uninstallNativeKernels(): void {
  if (!active) return;
  for (const name of NATIVE_KERNELS) {
    // Someone else may have replaced ours since; only undo what is still ours.
    if (tf.getKernel(name, BACKEND) === ours.get(name)) {
      tf.unregisterKernel(name, BACKEND);
      tf.registerKernel(previous.get(name)!);
    }
  }
  ours.clear();
  previous.clear();
  active = null;
}

/** True while both native kernels are the ones registered for wasm. */
export function nativeKernelsInstalled(): boolean {
  return active !== null && NATIVE_KERNELS.every((name) => tf.getKernel(name, BACKEND) === ours.get(name));
}

function describe(): string {
  if (!active) return 'native BLAS not installed';
  const threads = `${active.threads} thread${active.threads === 1 ? '' : 's'}`;
  return `OpenBLAS (${active.corename}, ${threads}) for BatchMatMul, _FusedMatMul; native Exp, Erf, Transpose, Sum`;
}
