import type { DeviceClass } from './queues';

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
export async function listWorkers(redis: RedisLike): Promise<WorkerAnnouncement[]> {
  const out: WorkerAnnouncement[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 100);
    cursor = next;
    for (const k of keys) {
      const v = await redis.get(k);
      if (v) out.push(JSON.parse(v) as WorkerAnnouncement);
    }
  } while (cursor !== '0');
  return out.sort((a, b) => a.workerId.localeCompare(b.workerId));
}
