import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { nextShard, shardJobId, shardRange, trainQueueFor, type QueueName } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { LIVE_JOB_STATES, JobQueues } from '../repositories/job-queues.repository';
import { RedisRepository } from '../repositories/redis.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { lastCommittedStep } from '../runs/run-lifecycle.service';

/** Long enough for a pass over many runs; a crashed holder blocks the others for at most this long. */
const LOCK_TTL_MS = 60_000;

export interface ReconcileReport {
  /** False when another replica held the lock. */
  ran: boolean;
  checked: number;
  requeued: { runId: string; jobId: string; queue: QueueName }[];
  /** Next-shard jobs that exist but finished (completed/failed) while the run still looks active. */
  stuck: { runId: string; jobId: string; state: string }[];
  errors: { runId: string; error: string }[];
}

/**
 * S3 is the source of truth, Redis only transport: for every queued or running run, the job of its
 * next shard must exist. If Redis lost it (FLUSHALL, failover without persistence), it is added
 * again under the same deterministic id, so a job that does exist is never duplicated.
 */
@Injectable()
export class ReconcileService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('ReconcileService');
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<ReconcileReport> | null = null;

  constructor(
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
    private readonly runs: RunRecords,
    private readonly jobs: JobQueues,
    private readonly redis: RedisRepository,
  ) {}

  onApplicationBootstrap(): void {
    if (this.options.reconcileOnStart) this.trigger();
    if (this.options.reconcileIntervalMs > 0) {
      this.timer = setInterval(() => this.trigger(), this.options.reconcileIntervalMs);
      this.timer.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.inFlight?.catch(() => undefined);
  }

  /** One pass, unless a pass of this instance is still running (then that pass is returned). */
  reconcileOnce(): Promise<ReconcileReport> {
    this.inFlight ??= this.pass().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private trigger(): void {
    this.reconcileOnce()
      .then((report) => {
        if (report.requeued.length > 0) {
          this.logger.log(`re-enqueued ${report.requeued.map((entry) => entry.jobId).join(', ')}`);
        }
        for (const entry of report.stuck) {
          this.logger.warn(
            `run ${entry.runId}: job ${entry.jobId} is ${entry.state} but the run is still active`,
          );
        }
      })
      .catch((error: Error) => this.logger.warn(`reconciliation failed: ${error.message}`));
  }

  private async pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { ran: false, checked: 0, requeued: [], stuck: [], errors: [] };
    const lockKey = this.redis.apiKey('reconcile-lock');
    const token = await this.redis.acquireLock(lockKey, LOCK_TTL_MS);
    if (token === null) return report;
    report.ran = true;
    try {
      for (const run of await this.runs.list()) {
        if ((run.status !== 'queued' && run.status !== 'running') || run.cancelRequested) continue;
        report.checked += 1;
        try {
          const committed = lastCommittedStep(run, await this.runs.committedSteps(run.runId));
          const shard = nextShard(run, committed);
          if (shard === null) continue;
          const queue = trainQueueFor(run.device);
          const jobId = shardJobId(run.runId, run.generation, shard);
          const existing = await this.jobs.get(queue, jobId);
          if (existing && LIVE_JOB_STATES.includes(existing.state as never)) continue;
          if (existing) {
            report.stuck.push({ runId: run.runId, jobId, state: existing.state });
            continue;
          }
          await this.jobs.add(
            queue,
            'train-shard',
            { runId: run.runId, shard, ...shardRange(run, shard) },
            jobId,
          );
          report.requeued.push({ runId: run.runId, jobId, queue });
        } catch (error) {
          report.errors.push({ runId: run.runId, error: (error as Error).message });
        }
      }
    } finally {
      await this.redis.releaseLock(lockKey, token).catch(() => false);
    }
    return report;
  }
}
