import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import type { DeviceClass } from '@dinoq/jobs';
import { resolveReplicas } from '@dinoq/dino';
import type { WorkerSettings } from './worker-settings';

/** emscripten's heap maximum for the 32-bit WASM backend: 4 GiB less one 64 KiB page. */
export const WASM_HEAP_MAX_BYTES = 4 * 1024 ** 3 - 64 * 1024;

/** cgroup v2, then v1: the memory limit of the container this process runs in. */
export const CGROUP_MEMORY_LIMIT_FILES = [
  '/sys/fs/cgroup/memory.max',
  '/sys/fs/cgroup/memory/memory.limit_in_bytes',
] as const;

/**
 * The first cgroup memory limit found, or null without one. v2 writes "max" when unlimited and
 * v1 a page-rounded 2^63, which is no safe integer: both read as no limit.
 */
export async function cgroupMemoryLimit(
  files: readonly string[] = CGROUP_MEMORY_LIMIT_FILES,
): Promise<number | null> {
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => null);
    if (text === null) continue;
    const value = Number(text.trim());
    return Number.isSafeInteger(value) && value > 0 ? value : null;
  }
  return null;
}

export interface MemoryInputs {
  deviceClass: DeviceClass;
  /** The tfjs backend the compute process loaded (`wasm`, `cpu`, `tensorflow`, `tensorflow-gpu`). */
  backendName: string;
  /** Data-parallel replicas a training shard runs with; each holds its own copy of the state. */
  replicas: number;
  /** DINOQ_WORKER_MEMORY_BYTES. */
  workerMemoryBytes: number | undefined;
  /** DINOQ_GPU_MEMORY_BYTES. */
  gpuMemoryBytes: number | undefined;
  totalMemoryBytes: number;
  cgroupLimitBytes: number | null;
}

export interface MemoryCapacity {
  /** Bytes the compute process may use; null when unknown. */
  memoryBytes: number | null;
  /** Where memoryBytes comes from, for the start-up log. */
  memorySource: string;
  /** Bytes one training step may occupy; null when unknown. */
  stepMemoryBytes: number | null;
}

/**
 * What this worker announces it can hold. A GPU worker's steps live in device memory, which tfjs
 * cannot report before the backend has allocated it, so the operator states it
 * (DINOQ_GPU_MEMORY_BYTES); without it the capacity is unknown and the API does not refuse runs
 * on this worker's account. A CPU worker has DINOQ_WORKER_MEMORY_BYTES, else the container's
 * cgroup limit, else the machine's memory. Replicas share that memory, and on WASM each
 * replica's tensors live in one heap of at most WASM_HEAP_MAX_BYTES.
 */
export function memoryCapacity(inputs: MemoryInputs): MemoryCapacity {
  const { memoryBytes, memorySource } = processMemory(inputs);
  if (memoryBytes === null) return { memoryBytes, memorySource, stepMemoryBytes: null };
  const perReplica = Math.floor(memoryBytes / Math.max(1, inputs.replicas));
  const stepMemoryBytes =
    inputs.backendName === 'wasm' ? Math.min(perReplica, WASM_HEAP_MAX_BYTES) : perReplica;
  return { memoryBytes, memorySource, stepMemoryBytes };
}

function processMemory(inputs: MemoryInputs): Pick<MemoryCapacity, 'memoryBytes' | 'memorySource'> {
  if (inputs.deviceClass === 'gpu') {
    return inputs.gpuMemoryBytes === undefined
      ? { memoryBytes: null, memorySource: 'unknown: DINOQ_GPU_MEMORY_BYTES is not set' }
      : { memoryBytes: inputs.gpuMemoryBytes, memorySource: 'DINOQ_GPU_MEMORY_BYTES' };
  }
  if (inputs.workerMemoryBytes !== undefined) {
    return { memoryBytes: inputs.workerMemoryBytes, memorySource: 'DINOQ_WORKER_MEMORY_BYTES' };
  }
  const limit = inputs.cgroupLimitBytes;
  return limit !== null && limit < inputs.totalMemoryBytes
    ? { memoryBytes: limit, memorySource: 'cgroup limit' }
    : { memoryBytes: inputs.totalMemoryBytes, memorySource: 'total memory' };
}

/**
 * This worker's capacity once its backend has loaded. Replicas as a shard with a batch larger
 * than the core count would use: smaller batches run fewer replicas, so this errs low.
 */
export async function measureCapacity(
  settings: Pick<WorkerSettings, 'trainReplicas' | 'workerMemoryBytes' | 'gpuMemoryBytes'>,
  deviceClass: DeviceClass,
  backend: { name: string; kind: 'gpu' | 'cpu' },
): Promise<MemoryCapacity> {
  return memoryCapacity({
    deviceClass,
    backendName: backend.name,
    replicas: resolveReplicas(settings.trainReplicas, backend, Number.MAX_SAFE_INTEGER),
    workerMemoryBytes: settings.workerMemoryBytes,
    gpuMemoryBytes: settings.gpuMemoryBytes,
    totalMemoryBytes: totalmem(),
    cgroupLimitBytes: await cgroupMemoryLimit(),
  });
}
