import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { QueueEvents } from 'bullmq';
import { allQueues, liveJobEventNames, type LiveJobEvent, type QueueName } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';
import { JobQueues } from './job-queues.repository';

type Listener = (event: LiveJobEvent) => void;
type JobIdentity = Pick<LiveJobEvent, 'name' | 'runId'>;

/** How far back the first read of the event streams starts (Redis and this host's clocks may differ). */
const EVENT_REPLAY_MS = 1_000;
/** Jobs whose name and run are remembered between their events; the oldest are forgotten first. */
const REMEMBERED_JOBS = 10_000;

function runIdOf(data: unknown): string | null {
  const runId = (data as { runId?: unknown } | null)?.runId;
  return typeof runId === 'string' ? runId : null;
}

/**
 * BullMQ's queue events of every queue, as LiveJobEvents for the dashboard's stream. The QueueEvents
 * connections (one blocking Redis connection per queue) open with the first subscriber. A job's
 * name and run are read once per job and shared by its events, which therefore stay in order.
 */
@Injectable()
export class QueueEventsRepository implements OnModuleDestroy {
  private readonly logger = new Logger('QueueEvents');
  private readonly listeners = new Set<Listener>();
  private readonly identities = new Map<string, Promise<JobIdentity>>();
  private readonly events: QueueEvents[] = [];
  private closing = false;
  private lastErrorLog = 0;

  constructor(
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
    private readonly jobs: JobQueues,
  ) {}

  /**
   * Calls `listener` with every job event from now on; returns the unsubscribe function. Resolves
   * once every queue's events are being read (or after `readyWithinMs` while Redis is away), so a
   * caller that reads state after it misses no change.
   */
  async subscribe(listener: Listener, readyWithinMs = 5_000): Promise<() => void> {
    this.listeners.add(listener);
    this.open();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(this.events.map((events) => events.waitUntilReady())).catch(() => undefined),
      new Promise((resolve) => (timer = setTimeout(resolve, readyWithinMs))),
    ]);
    clearTimeout(timer);
    return () => this.listeners.delete(listener);
  }

  async onModuleDestroy(): Promise<void> {
    this.closing = true;
    this.listeners.clear();
    await Promise.all(this.events.map((events) => events.close().catch(() => undefined)));
    this.events.length = 0;
  }

  private open(): void {
    if (this.events.length > 0 || this.closing) return;
    const { redisConnection, queuePrefix } = this.options;
    const retry = redisConnection.retryStrategy ?? ((times: number) => Math.min(1000 * times, 5_000));
    // Read from a second before now rather than from the first read ('$'), so events between here
    // and that read are not lost; the few older ones it repeats only make pages refetch.
    const lastEventId = `${Date.now() - EVENT_REPLAY_MS}-0`;
    for (const queue of allQueues) {
      const events = new QueueEvents(queue, {
        lastEventId,
        // Retrying no more once closing lets close() return while Redis is unreachable.
        connection: { ...redisConnection, retryStrategy: (times) => (this.closing ? null : retry(times)) },
        prefix: queuePrefix,
      });
      events.on('error', (error: Error) => this.logThrottled(`queue events ${queue}: ${error.message}`));
      for (const event of liveJobEventNames) {
        events.on(
          event,
          (payload: { jobId: string; name?: string; data?: unknown; failedReason?: string }) =>
            void this.relay(queue, event, payload),
        );
      }
      this.events.push(events);
    }
  }

  private async relay(
    queue: QueueName,
    event: LiveJobEvent['event'],
    payload: { jobId: string; data?: unknown; failedReason?: string },
  ): Promise<void> {
    const key = `${queue}/${payload.jobId}`;
    const identity = await this.identity(key, queue, payload.jobId);
    if (event === 'completed' || event === 'failed') this.identities.delete(key);
    const progress =
      event === 'progress' && typeof payload.data === 'object' && payload.data !== null
        ? (payload.data as Record<string, unknown>)
        : null;
    const message: LiveJobEvent = {
      event,
      queue,
      jobId: payload.jobId,
      ...identity,
      progress,
      failedReason: event === 'failed' ? (payload.failedReason ?? null) : null,
    };
    for (const listener of this.listeners) listener(message);
  }

  private identity(key: string, queue: QueueName, jobId: string): Promise<JobIdentity> {
    let found = this.identities.get(key);
    if (!found) {
      found = this.jobs.get(queue, jobId).then(
        (job) => ({ name: job?.name ?? null, runId: runIdOf(job?.data) }),
        (error: Error) => {
          this.logThrottled(`reading job ${key}: ${error.message}`);
          return { name: null, runId: null };
        },
      );
      this.identities.set(key, found);
      if (this.identities.size > REMEMBERED_JOBS) {
        this.identities.delete(this.identities.keys().next().value as string);
      }
    }
    return found;
  }

  private logThrottled(message: string): void {
    const now = Date.now();
    if (now - this.lastErrorLog > 10_000) {
      this.lastErrorLog = now;
      this.logger.warn(message);
    }
  }
}
