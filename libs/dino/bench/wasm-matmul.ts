/**
 * Micro-benchmark of matMul on the wasm backend, stock kernels vs the overrides of
 * src/backend/wasm-kernels.ts. Not a test: prints GFLOP/s per shape and flag combination.
 *
 * Every call gets FRESH operands: XNNPACK caches the packed right operand by tensor id, so
 * reusing one tensor hides the packing cost and overstates speed by up to 50× (tfjs-speed.md §1.2).
 * Times are medians of the process CPU time (wasm tfjs is single-threaded), robust to other load.
 *
 * Run from the repository root:
 *   npx tsc --outDir libs/dino/dist/bench-build --rootDir libs/dino --module nodenext \
 *     --moduleResolution nodenext --target es2022 --esModuleInterop --skipLibCheck \
 *     libs/dino/bench/wasm-matmul.ts && node libs/dino/dist/bench-build/bench/wasm-matmul.js [reps]
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { installWasmKernels, uninstallWasmKernels } from '../src/backend/wasm-kernels';

interface Case {
  name: string;
  a: number[];
  b: number[];
  transposeA?: boolean;
  transposeB?: boolean;
}

const T = 1088; // tokens of 64 local crops of 17 tokens
const D = 192;
const H = 4 * D;

const cases: Case[] = [
  { name: 'NN  x·W (fc1 forward)', a: [T, D], b: [D, H] },
  { name: 'NT  dY·Wᵀ (fc1 dX)', a: [T, H], b: [D, H], transposeB: true },
  { name: 'TN  Xᵀ·dY (fc1 dW, wide)', a: [T, D], b: [T, H], transposeA: true },
  { name: 'TN  Xᵀ·dY (fc2 dW, narrow)', a: [T, H], b: [T, D], transposeA: true },
  { name: 'TT  Aᵀ·Bᵀ', a: [D, T], b: [H, D], transposeA: true, transposeB: true },
  { name: 'batched NT  Q·Kᵀ [192×65×64]', a: [192, 65, 64], b: [192, 65, 64], transposeB: true },
  { name: 'batched NN  P·V [192×65×65]', a: [192, 65, 65], b: [192, 65, 64] },
  { name: 'batched TN  Pᵀ·dO [192×65×65]', a: [192, 65, 65], b: [192, 65, 64], transposeA: true },
  { name: 'shared right [64×65×192]·[192×576]', a: [64, 65, D], b: [D, 3 * D] },
];

function flops(c: Case): number {
  const [m, k] = c.transposeA ? c.a.slice(-2).reverse() : c.a.slice(-2);
  const n = c.transposeB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
  const batch = Math.max(tf.util.sizeFromShape(c.a.slice(0, -2)), tf.util.sizeFromShape(c.b.slice(0, -2)));
  return 2 * batch * m * n * k;
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function timeCase(c: Case, reps: number): number {
  const samples: number[] = [];
  for (let r = -1; r < reps; r++) {
    const a = tf.randomUniform(c.a, -1, 1);
    const b = tf.randomUniform(c.b, -1, 1);
    const start = cpuMs();
    const out = tf.matMul(a, b, c.transposeA, c.transposeB);
    const elapsed = cpuMs() - start;
    if (r >= 0) samples.push(elapsed);
    tf.dispose([a, b, out]);
  }
  return median(samples);
}

async function main(): Promise<void> {
  const reps = Number(process.argv[2] ?? 5);
  await tf.setBackend('wasm');
  console.log(`wasm matMul, median CPU ms of ${reps} calls with fresh operands; GFLOP/s in brackets`);
  console.log(`${'case'.padEnd(40)} ${'stock'.padStart(18)} ${'overrides'.padStart(18)} speed-up`);
  for (const c of cases) {
    uninstallWasmKernels();
    const stock = timeCase(c, reps);
    installWasmKernels();
    const fast = timeCase(c, reps);
    const rate = (ms: number) => `${ms.toFixed(1)} ms (${(flops(c) / ms / 1e6).toFixed(1)})`;
    console.log(
      `${c.name.padEnd(40)} ${rate(stock).padStart(18)} ${rate(fast).padStart(18)} ${(stock / fast).toFixed(1)}×`,
    );
  }
  uninstallWasmKernels();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
