import { Inject, Injectable } from '@nestjs/common';
import type { WorkerAnnouncement } from '@dinoq/jobs';
import { ObjectStore } from '@dinoq/storage';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { RedisRepository } from '../repositories/redis.repository';
import { withTimeout } from '../with-timeout';
import { sharedResult } from './shared-result';

const PROBE_TIMEOUT_MS = 3_000;
/** Absent key: a HEAD answering "not found" proves the bucket is reachable and the credentials work. */
const STORAGE_PROBE_KEY = 'health/probe';
/** How long one aggregation answers every probe: readiness probes and dashboards poll far slower. */
export const HEALTH_CACHE_MS = 1_000;

export interface DependencyStatus {
  status: 'up' | 'down';
  latencyMs: number | null;
  error: string | null;
}

async function probe(work: () => Promise<unknown>, what: string): Promise<DependencyStatus> {
  const started = performance.now();
  try {
    await withTimeout(work(), PROBE_TIMEOUT_MS, what);
    return { status: 'up', latencyMs: Math.round((performance.now() - started) * 10) / 10, error: null };
  } catch (error) {
    return { status: 'down', latencyMs: null, error: (error as Error).message };
  }
}

@Injectable()
export class HealthService {
  private readonly store: ObjectStore;
  /** The latest report, shared by concurrent requests and reused for HEALTH_CACHE_MS. */
  readonly check = sharedResult(HEALTH_CACHE_MS, () => this.aggregate());

  constructor(
    @Inject(API_OPTIONS) options: ApiOptions,
    private readonly redis: RedisRepository,
  ) {
    this.store = options.store;
  }

  private async aggregate() {
    const [redis, storage] = await Promise.all([
      probe(() => this.redis.ping(), 'Redis'),
      probe(() => this.store.exists(STORAGE_PROBE_KEY), 'object storage'),
    ]);
    let workers: WorkerAnnouncement[] = [];
    if (redis.status === 'up') {
      workers = await withTimeout(this.redis.workers(), PROBE_TIMEOUT_MS, 'worker registry').catch(() => []);
    }
    const byDeviceClass = { cpu: 0, gpu: 0 };
    for (const worker of workers) byDeviceClass[worker.deviceClass] += 1;
    return {
      // Reported, never gating readiness: the process serves what it can while a dependency is down.
      status: redis.status === 'up' && storage.status === 'up' ? ('ok' as const) : ('degraded' as const),
      checkedAt: new Date().toISOString(),
      checks: { redis, storage },
      workers: {
        count: workers.length,
        byDeviceClass,
        list: workers.map((worker) => ({
          workerId: worker.workerId,
          hostname: worker.hostname,
          deviceClass: worker.deviceClass,
          backend: worker.backend,
          kernels: worker.kernels,
          cores: worker.cores,
          trainReplicas: worker.trainReplicas,
          dataThreads: worker.dataThreads,
          queues: worker.queues,
          currentJob: worker.currentJob,
          lastSeen: worker.lastSeen,
        })),
      },
    };
  }
}
