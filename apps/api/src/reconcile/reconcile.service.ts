import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { continuationJob, handleShardFailure, type QueueName, type RunRecord } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { LockedPass } from '../locked-pass';
import { LIVE_JOB_STATES, JobQueues } from '../repositories/job-queues.repository';
import { RedisRepository } from '../repositories/redis.repository';
import { RunIndexRepository } from '../repositories/run-index.repository';
import { RunRecords } from '../repositories/run-records.repository';

/** Long enough for a pass over many runs; a crashed holder blocks the others for at most this long. */
const LOCK_TTL_MS = 60_000;

/**
 * A pass reads from S3 only the runs the index holds as active; every this-many passes (and
 * whenever the index is missing) it reads every run record, which puts right any index entry a
 * crash or an outage lost. At 10,000 runs a full read takes tens of seconds.
 */
const FULL_SYNC_EVERY_PASSES = 20;

export interface ReconcileReport {
  /** False when another replica held the lock. */
  ran: boolean;
  /** Which run records were read from S3: every one, or those the index holds as active. */
  scope: 'all' | 'active';
  checked: number;
  requeued: { runId: string; jobId: string; queue: QueueName }[];
  /**
   * Next-shard jobs that ended for good (failed, or completed without committing) while the run was
   * still active, and what was done: a new attempt of the shard, or the run failed with the reason.
   */
  stuck: { runId: string; jobId: string; state: string; outcome: 'retried' | 'failed' | 'unchanged' }[];
  errors: { runId: string; error: string }[];
}

function emptyReport(): ReconcileReport {
  return { ran: true, scope: 'active', checked: 0, requeued: [], stuck: [], errors: [] };
}

/**
 * S3 is the source of truth, Redis only transport: for every queued or running run, the job of its
 * next shard must exist. If Redis lost it (FLUSHALL, failover without persistence), it is added
 * again under the same deterministic id, so a job that does exist is never duplicated.
 */
@Injectable()
export class ReconcileService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('ReconcileService');
  private readonly pass: LockedPass<ReconcileReport>;
  private passes = 0;

  constructor(
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
    private readonly runs: RunRecords,
    private readonly jobs: JobQueues,
    redis: RedisRepository,
    private readonly index: RunIndexRepository,
  ) {
    this.pass = new LockedPass({
      redis,
      lockName: 'reconcile-lock',
      lockTtlMs: LOCK_TTL_MS,
      run: () => this.reconcileActive(),
      skipped: () => ({ ...emptyReport(), ran: false }),
      onResult: (report) => this.logReport(report),
      onError: (error) => this.logger.warn(`reconciliation failed: ${error.message}`),
    });
  }

  onApplicationBootstrap(): void {
    this.pass.start(this.options.reconcileIntervalMs, this.options.reconcileOnStart);
  }

  onModuleDestroy(): Promise<void> {
    return this.pass.stop();
  }

  /** One pass, unless a pass of this instance is still running (then that pass is returned). */
  reconcileOnce(): Promise<ReconcileReport> {
    return this.pass.once();
  }

  private logReport(report: ReconcileReport): void {
    if (report.requeued.length > 0) {
      this.logger.log(`re-enqueued ${report.requeued.map((entry) => entry.jobId).join(', ')}`);
    }
    for (const entry of report.stuck) {
      this.logger.warn(
        `run ${entry.runId}: job ${entry.jobId} was ${entry.state} while the run was active: ${entry.outcome}`,
      );
    }
  }

  private async reconcileActive(): Promise<ReconcileReport> {
    const report = emptyReport();
    for (const run of await this.readRuns(report)) {
      if ((run.status !== 'queued' && run.status !== 'running') || run.cancelRequested) continue;
      report.checked += 1;
      try {
        await this.reconcileRun(run, report);
      } catch (error) {
        report.errors.push({ runId: run.runId, error: (error as Error).message });
      }
    }
    return report;
  }

  /**
   * The run records this pass looks at, read from S3 and put into the listing index (newer wins per
   * run); after a wipe the index is rebuilt whole first.
   */
  private async readRuns(report: ReconcileReport): Promise<RunRecord[]> {
    const built = await this.index.isBuilt().catch(() => false);
    const full = !built || this.passes % FULL_SYNC_EVERY_PASSES === 0;
    this.passes += 1;
    report.scope = full ? 'all' : 'active';
    const records = full ? await this.runs.list() : await this.runs.findMany(await this.index.activeRunIds());
    try {
      if (!built) await this.index.ensureBuilt(async () => records);
      await Promise.all(records.map((record) => this.index.recordWritten(record)));
    } catch (error) {
      report.errors.push({ runId: '*', error: `listing index: ${(error as Error).message}` });
    }
    return records;
  }

  /**
   * Makes sure the job of the run's next shard (or its round's flow) exists, or that a job which
   * ended for good is acted on. A round's flow is looked up by its merge job, the flow's parent.
   */
  private async reconcileRun(run: RunRecord, report: ReconcileReport): Promise<void> {
    const job = continuationJob(run, await this.runs.committedSteps(run.runId));
    if (!job) return;
    const existing = await this.jobs.get(job.queue, job.jobId);
    if (existing && LIVE_JOB_STATES.includes(existing.state as never)) return;
    if (!existing) {
      await this.jobs.addContinuation(job);
      report.requeued.push({ runId: run.runId, jobId: job.jobId, queue: job.queue });
      return;
    }
    const what =
      job.kind === 'shard'
        ? `shard ${job.data.shard} (job ${job.jobId})`
        : `round ${job.data.fromStep}..${job.data.toStep} (merge job ${job.jobId})`;
    const reason =
      existing.state === 'failed'
        ? `${what} failed: ${existing.failedReason ?? 'no reason recorded'}`
        : `${what} ended ${existing.state} without committing step ${job.data.toStep}`;
    const outcome = await handleShardFailure(
      {
        runs: this.runs,
        committedSteps: (runId) => this.runs.committedSteps(runId),
        enqueue: async (work) => {
          await this.jobs.addContinuation(work);
        },
      },
      { runId: run.runId, generation: run.generation, reason, unrecoverable: false },
    );
    report.stuck.push({ runId: run.runId, jobId: job.jobId, state: existing.state, outcome: outcome.kind });
  }
}
