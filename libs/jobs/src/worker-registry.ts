import { QUEUE_PREFIX, type DeviceClass } from './queues';

/** What a worker announces about itself; refreshed every few seconds with a TTL. */
export interface WorkerAnnouncement {
  workerId: string;
  hostname: string;
  pid: number;
  deviceClass: DeviceClass;
  backend: string;
  kernels: string;
  /** Cores the worker sees, and its replica and augmentation-thread settings (`auto` or a count). */
  cores: number;
  trainReplicas: string;
  dataThreads: string;
  queues: string[];
  startedAt: string;
  lastSeen: string;
  currentJob: string | null;
  /**
   * Bytes the compute process may use: host memory (DINOQ_WORKER_MEMORY_BYTES, else the cgroup
   * limit or the total) on CPU workers, device memory (DINOQ_GPU_MEMORY_BYTES) on GPU workers.
   * Null or absent (workers from before this field): unknown.
   */
  memoryBytes?: number | null;
  /**
   * Bytes one training step may occupy: memoryBytes shared by the data-parallel replicas (each
   * holds a full copy of the state), and at most one 32-bit heap on the WASM backend.
   * Null or absent: unknown.
   */
  stepMemoryBytes?: number | null;
  /** BullMQ key prefix of the queues it consumes; absent (older workers): the default prefix. */
  queuePrefix?: string;
  /**
   * Training speed measured on this worker's latest training job: the estimated matmul FLOPs of a
   * step (libs/config step-cost.ts) times its median steps per second. Null or absent: not
   * measured yet. Sweeps convert a budget in minutes to steps with it.
   */
  trainFlopsPerSecond?: number | null;
}

/** An announcement as read back: capacity fields present, unknown ones null. */
export type ListedWorker = WorkerAnnouncement &
  Required<
    Pick<WorkerAnnouncement, 'memoryBytes' | 'stepMemoryBytes' | 'queuePrefix' | 'trainFlopsPerSecond'>
  >;

function byteCount(value: unknown): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : null;
}

/** Older heartbeats lack the capacity fields: they parse with unknown capacity. */
function parseAnnouncement(text: string): ListedWorker {
  const a = JSON.parse(text) as WorkerAnnouncement;
  return {
    ...a,
    memoryBytes: byteCount(a.memoryBytes),
    stepMemoryBytes: byteCount(a.stepMemoryBytes),
    queuePrefix: typeof a.queuePrefix === 'string' && a.queuePrefix !== '' ? a.queuePrefix : QUEUE_PREFIX,
    trainFlopsPerSecond:
      typeof a.trainFlopsPerSecond === 'number' &&
      Number.isFinite(a.trainFlopsPerSecond) &&
      a.trainFlopsPerSecond > 0
        ? a.trainFlopsPerSecond
        : null,
  };
}

/** The minimal Redis surface used here (ioredis and BullMQ's client both have it). */
export interface RedisLike {
  set(key: string, value: string, mode: 'EX', seconds: number): Promise<unknown>;
  get(key: string): Promise<string | null>;
  del(key: string): Promise<unknown>;
  scan(
    cursor: string,
    match: 'MATCH',
    pattern: string,
    count: 'COUNT',
    n: number,
  ): Promise<[string, string[]]>;
}

const KEY_PREFIX = 'dinoq:workers:';
export const WORKER_TTL_SECONDS = 30;

export async function announceWorker(redis: RedisLike, a: WorkerAnnouncement): Promise<void> {
  await redis.set(KEY_PREFIX + a.workerId, JSON.stringify(a), 'EX', WORKER_TTL_SECONDS);
}

export async function withdrawWorker(redis: RedisLike, workerId: string): Promise<void> {
  await redis.del(KEY_PREFIX + workerId);
}

/** Workers seen within the TTL. */
export async function listWorkers(redis: RedisLike): Promise<ListedWorker[]> {
  const out: ListedWorker[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 100);
    cursor = next;
    for (const k of keys) {
      const v = await redis.get(k);
      if (v) out.push(parseAnnouncement(v));
    }
  } while (cursor !== '0');
  return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
}
