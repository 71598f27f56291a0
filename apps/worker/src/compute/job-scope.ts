import type { DataThreadSetting, ShardCache } from '@dinoq/data';
import type { ReplicaSetting } from '@dinoq/dino';
import type { RunRepository } from '@dinoq/jobs';
import type { ObjectStore } from '@dinoq/storage';
import type { DatasetCache } from './dataset-cache';
import type { DataSettings } from './training-data';
import { JobAbandonedError, type ChildBackend, type ComputeJob, type LogLevel } from './protocol';

/** What every job handler of the compute process works with. */
export interface ComputeContext {
  store: ObjectStore;
  runs: RunRepository;
  datasets: DatasetCache;
  backend: ChildBackend;
  /** Data-parallel replicas for training shards, resolved per run against its batch size. */
  trainReplicas: ReplicaSetting;
  /** Augmentation threads for training shards, resolved against the replica count. */
  dataThreads: DataThreadSetting;
  /** Memory or streaming, and the streamed shards' local cache. */
  data: DataSettings;
  /** Open shard caches, one per dataset version, kept between jobs. */
  shardCaches: Map<string, Promise<ShardCache>>;
}

/** One job's link to the parent: progress, logs and the abandon request. */
export interface JobScope {
  readonly job: ComputeJob;
  progress(progress: Record<string, unknown>): void;
  /** `toJob` also appends the line to the BullMQ job's log (keep those few). */
  log(level: LogLevel, message: string, fields?: Record<string, unknown>, toJob?: boolean): void;
  /** Throws JobAbandonedError once the parent asked to drop the job; call it at safe points only. */
  throwIfAbandoned(): void;
}

export class AbandonFlag {
  private reason: string | null = null;

  set(reason: string): void {
    this.reason ??= reason;
  }

  clear(): void {
    this.reason = null;
  }

  check(): void {
    if (this.reason !== null) throw new JobAbandonedError(this.reason);
  }
}
