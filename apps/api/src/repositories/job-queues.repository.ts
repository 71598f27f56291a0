import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { QueueEvents, type Job, type JobState, type Queue, type RepeatOptions } from 'bullmq';
import {
  JobProducer,
  allQueues,
  defaultJobOptions,
  readQueueDemand,
  type Continuation,
  type JobName,
  type JobPayload,
  type ListedWorker,
  type QueueDemand,
  type QueueName,
} from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';

/** States in which a job will still run (or is running): it needs no re-enqueueing. */
export const LIVE_JOB_STATES: readonly JobState[] = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
];
const WAITING_STATES: readonly JobState[] = ['waiting', 'delayed', 'prioritized', 'waiting-children'];

export interface JobSnapshot {
  id: string;
  name: string;
  queue: QueueName;
  state: JobState | 'unknown';
  data: unknown;
  failedReason: string | null;
  createdAt: string | null;
  processedAt: string | null;
  finishedAt: string | null;
  /** finishedOn − processedOn of a finished job. */
  durationMs: number | null;
}

export type RemoveOutcome = 'removed' | 'active' | 'absent' | 'finished';

export interface SchedulerSnapshot {
  id: string;
  queue: QueueName;
  name: string;
  every: number | null;
  pattern: string | null;
  tz: string | null;
  next: number | null;
  data: unknown;
}

const iso = (ms: number | undefined) => (ms ? new Date(ms).toISOString() : null);

/** Every BullMQ operation of the API: enqueueing, inspecting and removing jobs, job schedulers. */
@Injectable()
export class JobQueues implements OnModuleDestroy {
  private readonly logger = new Logger('JobQueues');
  private readonly producer: JobProducer;
  private readonly events: QueueEvents[] = [];
  private closing = false;
  private lastErrorLog = 0;

  constructor(@Inject(API_OPTIONS) private readonly options: ApiOptions) {
    this.producer = new JobProducer(options.redisConnection, options.queuePrefix, (queue, error) =>
      this.logThrottled(`queue ${queue}: ${error.message}`),
    );
  }

  /** Adds a job under a deterministic id; an id that already exists returns the existing job. */
  async add<N extends JobName>(
    queue: QueueName,
    name: N,
    data: JobPayload<N>,
    jobId: string,
  ): Promise<JobSnapshot> {
    const job = await this.producer.add(queue, name, data, { jobId });
    return this.snapshot(queue, job);
  }

  /** Adds the next shard's job or the next round's flow; ids that exist are kept as they are. */
  async addContinuation(work: Continuation): Promise<JobSnapshot> {
    return this.snapshot(work.queue, await this.producer.addContinuation(work));
  }

  /** The BullMQ queue itself, for the queue dashboard (bull-board), which reads queues directly. */
  queue(name: QueueName): Queue {
    return this.producer.queue(name);
  }

  async get(queue: QueueName, jobId: string): Promise<JobSnapshot | null> {
    const job = await this.producer.queue(queue).getJob(jobId);
    return job ? this.snapshot(queue, job) : null;
  }

  /** Removes a job that has not started; an active job is left to finish. */
  async removeIfWaiting(queue: QueueName, jobId: string): Promise<RemoveOutcome> {
    const job = await this.producer.queue(queue).getJob(jobId);
    if (!job) return 'absent';
    const state = await job.getState();
    if (state === 'active') return 'active';
    if (!WAITING_STATES.includes(state as JobState)) return 'finished';
    try {
      await job.remove();
      return 'removed';
    } catch {
      // A worker locked it between getState and remove.
      return 'active';
    }
  }

  /** Removes a finished job so that its id can be used again (e.g. re-importing a dataset). */
  async removeFinished(queue: QueueName, jobId: string): Promise<boolean> {
    const job = await this.producer.queue(queue).getJob(jobId);
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'completed' && state !== 'failed') return false;
    await job.remove();
    return true;
  }

  /** Jobs of one name in the given states, newest first. */
  async jobs(
    queue: QueueName,
    name: JobName,
    states: readonly JobState[],
    limit = 1000,
  ): Promise<JobSnapshot[]> {
    const jobs = await this.producer.queue(queue).getJobs([...states], 0, limit - 1, false);
    const named = jobs.filter((job): job is Job => Boolean(job) && job.name === name);
    return Promise.all(named.map((job) => this.snapshot(queue, job)));
  }

  async upsertScheduler(
    queue: QueueName,
    schedulerId: string,
    repeat: Pick<RepeatOptions, 'every' | 'pattern' | 'tz'>,
    name: 'evaluate-sweep',
    data: JobPayload<'evaluate-sweep'>,
  ): Promise<void> {
    await this.producer.queue(queue).upsertJobScheduler(schedulerId, repeat, {
      name,
      data,
      opts: {
        removeOnComplete: defaultJobOptions.removeOnComplete,
        removeOnFail: defaultJobOptions.removeOnFail,
      },
    });
  }

  async scheduler(queue: QueueName, schedulerId: string): Promise<SchedulerSnapshot | null> {
    const found = await this.producer.queue(queue).getJobScheduler(schedulerId);
    return found ? this.schedulerSnapshot(queue, found) : null;
  }

  async schedulers(queue: QueueName): Promise<SchedulerSnapshot[]> {
    const found = await this.producer.queue(queue).getJobSchedulers(0, -1, true);
    return found.map((entry) => this.schedulerSnapshot(queue, entry));
  }

  async removeScheduler(queue: QueueName, schedulerId: string): Promise<boolean> {
    return this.producer.queue(queue).removeJobScheduler(schedulerId);
  }

  /** Job counts per queue and state. */
  counts(): Promise<Record<QueueName, Record<string, number>>> {
    return this.producer.counts();
  }

  /** Delayed jobs due within this many ms count as demand. */
  get lookaheadMs(): number {
    return this.options.demandLookaheadMs;
  }

  /** What each queue asks of the worker pool, in pods (see QueueDemand for the formula). */
  demand(workers: readonly ListedWorker[]): Promise<QueueDemand[]> {
    return readQueueDemand((queue) => this.producer.queue(queue), workers, {
      now: Date.now(),
      lookaheadMs: this.lookaheadMs,
      queuePrefix: this.options.queuePrefix,
    });
  }

  /** Listens to finished jobs of every queue; closed with the module. */
  onCompleted(listener: (queue: QueueName, job: JobSnapshot) => void): void {
    const { redisConnection } = this.options;
    const retry = redisConnection.retryStrategy ?? ((times: number) => Math.min(1000 * times, 5_000));
    for (const queue of allQueues) {
      const events = new QueueEvents(queue, {
        // While Redis is unreachable, closing a QueueEvents waits for its connection to become
        // ready; retrying no more once closing makes the connection end, so close() returns.
        connection: { ...redisConnection, retryStrategy: (times) => (this.closing ? null : retry(times)) },
        prefix: this.options.queuePrefix,
      });
      events.on('error', (error: Error) => this.logThrottled(`queue events ${queue}: ${error.message}`));
      events.on('completed', ({ jobId }) => {
        void this.get(queue, jobId)
          .then((job) => job && listener(queue, job))
          .catch((error: Error) =>
            this.logThrottled(`reading completed job ${queue}/${jobId}: ${error.message}`),
          );
      });
      this.events.push(events);
    }
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    // A connection that never reached Redis rejects its close: it is closed all the same.
    await Promise.all(this.events.map((events) => events.close().catch(() => undefined)));
    this.events.length = 0;
    await this.producer.close();
  }

  private async snapshot(queue: QueueName, job: Job): Promise<JobSnapshot> {
    const state = (await job.getState()) as JobState | 'unknown';
    return {
      id: String(job.id),
      name: job.name,
      queue,
      state,
      data: job.data,
      failedReason: job.failedReason || null,
      createdAt: iso(job.timestamp),
      processedAt: iso(job.processedOn),
      finishedAt: iso(job.finishedOn),
      durationMs: job.finishedOn && job.processedOn ? job.finishedOn - job.processedOn : null,
    };
  }

  private schedulerSnapshot(
    queue: QueueName,
    entry: {
      key: string;
      id?: string | null;
      name: string;
      every?: number;
      pattern?: string;
      tz?: string;
      next?: number;
      template?: { data?: unknown };
    },
  ): SchedulerSnapshot {
    return {
      id: entry.id ?? entry.key,
      queue,
      name: entry.name,
      every: entry.every ?? null,
      pattern: entry.pattern ?? null,
      tz: entry.tz ?? null,
      next: entry.next ?? null,
      data: entry.template?.data ?? null,
    };
  }

  private logThrottled(message: string): void {
    const now = Date.now();
    if (now - this.lastErrorLog > 10_000) {
      this.lastErrorLog = now;
      this.logger.warn(message);
    }
  }
}
