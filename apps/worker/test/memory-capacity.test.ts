import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { listWorkers, redisConnectionFromEnv, withdrawWorker, type WorkerAnnouncement } from '@dinoq/jobs';
import { Heartbeat } from '../src/heartbeat';
import { createLogger } from '../src/logger';
import {
  WASM_HEAP_MAX_BYTES,
  cgroupMemoryLimit,
  measureCapacity,
  memoryCapacity,
  type MemoryInputs,
} from '../src/memory-capacity';
import { readWorkerSettings } from '../src/worker-settings';

const GiB = 1024 ** 3;

const cpuWorker: MemoryInputs = {
  deviceClass: 'cpu',
  backendName: 'tensorflow',
  replicas: 1,
  workerMemoryBytes: undefined,
  gpuMemoryBytes: undefined,
  totalMemoryBytes: 24 * GiB,
  cgroupLimitBytes: null,
};

describe('memoryCapacity', () => {
  it('takes the explicit setting, else the cgroup limit when lower, else the total', () => {
    expect(memoryCapacity(cpuWorker)).toEqual({
      memoryBytes: 24 * GiB,
      memorySource: 'total memory',
      stepMemoryBytes: 24 * GiB,
    });
    expect(memoryCapacity({ ...cpuWorker, cgroupLimitBytes: 8 * GiB })).toMatchObject({
      memoryBytes: 8 * GiB,
      memorySource: 'cgroup limit',
    });
    expect(memoryCapacity({ ...cpuWorker, cgroupLimitBytes: 64 * GiB }).memoryBytes).toBe(24 * GiB);
    expect(
      memoryCapacity({ ...cpuWorker, cgroupLimitBytes: 8 * GiB, workerMemoryBytes: 2 * GiB }),
    ).toMatchObject({ memoryBytes: 2 * GiB, memorySource: 'DINOQ_WORKER_MEMORY_BYTES' });
  });

  it('shares memory between replicas and caps a step at one WASM heap', () => {
    expect(memoryCapacity({ ...cpuWorker, backendName: 'cpu', replicas: 4 }).stepMemoryBytes).toBe(6 * GiB);
    expect(memoryCapacity({ ...cpuWorker, backendName: 'wasm', replicas: 2 })).toEqual({
      memoryBytes: 24 * GiB,
      memorySource: 'total memory',
      stepMemoryBytes: WASM_HEAP_MAX_BYTES,
    });
    expect(
      memoryCapacity({ ...cpuWorker, backendName: 'wasm', replicas: 2, workerMemoryBytes: 4 * GiB })
        .stepMemoryBytes,
    ).toBe(2 * GiB);
  });

  it('knows a GPU worker only from DINOQ_GPU_MEMORY_BYTES, whatever the host has', () => {
    const gpu = { ...cpuWorker, deviceClass: 'gpu' as const, backendName: 'tensorflow-gpu' };
    expect(memoryCapacity(gpu)).toEqual({
      memoryBytes: null,
      memorySource: 'unknown: DINOQ_GPU_MEMORY_BYTES is not set',
      stepMemoryBytes: null,
    });
    expect(memoryCapacity({ ...gpu, gpuMemoryBytes: 80 * GiB, workerMemoryBytes: 2 * GiB })).toEqual({
      memoryBytes: 80 * GiB,
      memorySource: 'DINOQ_GPU_MEMORY_BYTES',
      stepMemoryBytes: 80 * GiB,
    });
  });
});

describe('measureCapacity', () => {
  it('divides by the replicas a shard would run with', async () => {
    const settings = { trainReplicas: 2 as const, workerMemoryBytes: 4 * GiB, gpuMemoryBytes: undefined };
    const wasm = await measureCapacity(settings, 'cpu', { name: 'wasm', kind: 'cpu' });
    expect(wasm).toMatchObject({ memoryBytes: 4 * GiB, stepMemoryBytes: 2 * GiB });
    // `auto` is one replica on TensorFlow backends, which thread by themselves.
    const tf = await measureCapacity({ ...settings, trainReplicas: 'auto' }, 'cpu', {
      name: 'tensorflow',
      kind: 'cpu',
    });
    expect(tf.stepMemoryBytes).toBe(4 * GiB);
  });
});

describe('cgroupMemoryLimit', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dinoq-cgroup-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function limitOf(content: string): Promise<number | null> {
    const file = join(dir, `limit-${Math.random().toString(36).slice(2)}`);
    await writeFile(file, content);
    return cgroupMemoryLimit([join(dir, 'absent'), file]);
  }

  it('reads a v2 or v1 limit and treats "max" or 2^63 as none', async () => {
    expect(await limitOf('8589934592\n')).toBe(8 * GiB);
    expect(await limitOf('max\n')).toBeNull();
    expect(await limitOf('9223372036854771712\n')).toBeNull();
    expect(await cgroupMemoryLimit([join(dir, 'absent')])).toBeNull();
  });
});

describe('memory settings', () => {
  it('reads both byte counts and leaves them unset by default', () => {
    expect(readWorkerSettings({})).toMatchObject({ workerMemoryBytes: undefined, gpuMemoryBytes: undefined });
    expect(
      readWorkerSettings({
        DINOQ_WORKER_MEMORY_BYTES: '17179869184',
        DINOQ_GPU_MEMORY_BYTES: ' 85899345920 ',
      }),
    ).toMatchObject({ workerMemoryBytes: 16 * GiB, gpuMemoryBytes: 80 * GiB });
  });

  it('names a bad value', () => {
    expect(() =>
      readWorkerSettings({ DINOQ_WORKER_MEMORY_BYTES: '16GiB', DINOQ_GPU_MEMORY_BYTES: '0' }),
    ).toThrow(
      /DINOQ_WORKER_MEMORY_BYTES must be a positive integer of bytes, got "16GiB".*DINOQ_GPU_MEMORY_BYTES must be a positive integer of bytes, got "0"/,
    );
  });
});

describe('heartbeat capacity in the registry (real Redis)', () => {
  const redis = new Redis(redisConnectionFromEnv() as RedisOptions);
  const suffix = Math.random().toString(36).slice(2, 10);
  const announcement = (workerId: string): WorkerAnnouncement => ({
    workerId,
    hostname: 'test-host',
    pid: process.pid,
    deviceClass: 'cpu',
    backend: 'wasm',
    kernels: 'wasm-fast',
    cores: 2,
    trainReplicas: 'auto',
    dataThreads: 'auto',
    queues: ['train-cpu'],
    startedAt: new Date().toISOString(),
    lastSeen: new Date().toISOString(),
    currentJob: null,
  });
  afterAll(async () => {
    await withdrawWorker(redis, `old-${suffix}`);
    await redis.quit();
  });

  /** Polls until `read` gives something (the first beat is asynchronous). */
  async function eventually<T>(
    read: () => Promise<T | undefined>,
    timeoutMs = 5_000,
  ): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    let value = await read();
    while (value === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      value = await read();
    }
    return value;
  }

  async function listed(workerId: string) {
    return (await listWorkers(redis)).find((worker) => worker.workerId === workerId);
  }

  it('announces memory, step memory and the queue prefix, and withdraws them on stop', async () => {
    const workerId = `capacity-${suffix}`;
    const heartbeat = new Heartbeat(
      redis,
      () => ({
        ...announcement(workerId),
        memoryBytes: 24 * GiB,
        stepMemoryBytes: 4 * GiB,
        queuePrefix: 'e2e-x',
      }),
      createLogger('silent'),
    );
    heartbeat.start();
    expect(await eventually(() => listed(workerId))).toMatchObject({
      memoryBytes: 24 * GiB,
      stepMemoryBytes: 4 * GiB,
      queuePrefix: 'e2e-x',
    });
    await heartbeat.stop();
    expect(await listed(workerId)).toBeUndefined();
  });

  it('reads a heartbeat without the new fields as unknown capacity on the default prefix', async () => {
    const workerId = `old-${suffix}`;
    await redis.set(`dinoq:workers:${workerId}`, JSON.stringify(announcement(workerId)), 'EX', 30);
    expect(await listed(workerId)).toMatchObject({
      memoryBytes: null,
      stepMemoryBytes: null,
      queuePrefix: 'dinoq',
    });
  });
});
