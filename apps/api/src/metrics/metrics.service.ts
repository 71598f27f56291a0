import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { allQueues, runStatuses, type QueueDemand, type QueueName } from '@dinoq/jobs';
import { sharedResult } from '../health/shared-result';
import { JobQueues } from '../repositories/job-queues.repository';
import { RedisRepository } from '../repositories/redis.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { withTimeout } from '../with-timeout';

/** Training shards take minutes to hours; evaluations and imports seconds to minutes. */
const DURATION_BUCKETS_SECONDS = [1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400];
const RUNS_LISTING_REUSE_MS = 1_000;
/** One demand read answers a scrape and the autoscaler's polls of every queue within this time. */
const DEMAND_REUSE_MS = 1_000;
/** BullMQ's connections wait for Redis forever; a scrape or an autoscaler poll must not. */
const DEMAND_TIMEOUT_MS = 3_000;

/**
 * Prometheus metrics of one API instance (its own registry, so several instances in one process do
 * not collide). Gauges are read from Redis and S3 when scraped; job durations come from BullMQ
 * `completed` events as they happen.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  private readonly logger = new Logger('MetricsService');
  readonly registry = new Registry();
  private readonly jobDuration: Histogram<'queue'>;
  private readonly collectErrors: Counter<'source'>;
  /** Demand of every queue, read once for the gauge and the JSON route alike. */
  private readonly demands: () => Promise<QueueDemand[]>;

  constructor(
    private readonly jobs: JobQueues,
    private readonly runs: RunRecords,
    private readonly redis: RedisRepository,
  ) {
    const registers = [this.registry];
    const demands = sharedResult(DEMAND_REUSE_MS, () =>
      withTimeout(
        redis.workers().then((workers) => jobs.demand(workers)),
        DEMAND_TIMEOUT_MS,
        'Redis (queue demand)',
      ),
    );
    this.demands = demands;
    this.collectErrors = new Counter({
      name: 'dinoq_metrics_collect_errors_total',
      help: 'Scrapes in which a source (redis, storage) could not be read',
      labelNames: ['source'],
      registers,
    });
    const failed = (source: string, error: unknown) => {
      this.collectErrors.inc({ source });
      this.logger.warn(`metrics from ${source}: ${(error as Error).message}`);
    };

    new Gauge({
      name: 'dinoq_queue_jobs',
      help: 'Jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers,
      collect: async function (this: Gauge<'queue' | 'state'>) {
        this.reset();
        try {
          const counts = await jobs.counts();
          for (const queue of allQueues) {
            for (const [state, count] of Object.entries(counts[queue])) this.set({ queue, state }, count);
          }
        } catch (error) {
          failed('redis', error);
        }
      },
    });

    new Gauge({
      name: 'dinoq_queue_demand',
      help:
        'Worker pods each queue asks for: waiting + prioritized + delayed due within the look-ahead + ' +
        'workers busy with its jobs (a worker counted once, not per job waiting for its device)',
      labelNames: ['queue'],
      registers,
      collect: async function (this: Gauge<'queue'>) {
        this.reset();
        try {
          for (const { queue, demand } of await demands()) this.set({ queue }, demand);
        } catch (error) {
          failed('redis', error);
        }
      },
    });

    this.jobDuration = new Histogram({
      name: 'dinoq_job_duration_seconds',
      help: 'Processing time of completed jobs (finishedOn - processedOn), by queue',
      labelNames: ['queue'],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });

    // Both run gauges read one listing of the run records per scrape.
    let runsScrape: {
      startedAt: number;
      records: Promise<Awaited<ReturnType<RunRecords['list']>> | null>;
    } | null = null;
    const scrapeRuns = () => {
      if (runsScrape === null || Date.now() - runsScrape.startedAt > RUNS_LISTING_REUSE_MS) {
        const records = runs.list().catch((error: unknown) => {
          failed('storage', error);
          return null;
        });
        runsScrape = { startedAt: Date.now(), records };
      }
      return runsScrape.records;
    };

    new Gauge({
      name: 'dinoq_training_images_per_second',
      help: 'Training throughput of each running run (latest metrics line reported by its worker)',
      labelNames: ['run_id', 'device'],
      registers,
      collect: async function (this: Gauge<'run_id' | 'device'>) {
        this.reset();
        for (const run of (await scrapeRuns()) ?? []) {
          const rate = run.latestMetrics?.imagesPerSecond;
          if (run.status === 'running' && typeof rate === 'number')
            this.set({ run_id: run.runId, device: run.device }, rate);
        }
      },
    });

    new Gauge({
      name: 'dinoq_runs',
      help: 'Runs per status',
      labelNames: ['status'],
      registers,
      collect: async function (this: Gauge<'status'>) {
        this.reset();
        const all = await scrapeRuns();
        if (all === null) return;
        for (const status of runStatuses)
          this.set({ status }, all.filter((run) => run.status === status).length);
      },
    });

    new Gauge({
      name: 'dinoq_workers',
      help: 'Workers seen within their announcement TTL, by device class',
      labelNames: ['device_class'],
      registers,
      collect: async function (this: Gauge<'device_class'>) {
        this.reset();
        try {
          const workers = await redis.workers();
          for (const deviceClass of ['cpu', 'gpu'] as const) {
            this.set(
              { device_class: deviceClass },
              workers.filter((worker) => worker.deviceClass === deviceClass).length,
            );
          }
        } catch (error) {
          failed('redis', error);
        }
      },
    });
  }

  onModuleInit(): void {
    this.jobs.onCompleted((queue, job) => {
      if (job.durationMs !== null) this.jobDuration.observe({ queue }, job.durationMs / 1000);
    });
  }

  /** One queue's demand and its parts. */
  async demand(queue: QueueName): Promise<QueueDemand & { lookaheadMs: number }> {
    const found = (await this.demands()).find((entry) => entry.queue === queue);
    if (!found) throw new Error(`no demand read for queue ${queue}`);
    return { ...found, lookaheadMs: this.jobs.lookaheadMs };
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
