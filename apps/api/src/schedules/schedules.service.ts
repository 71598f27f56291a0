import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { QueueName, evaluateQueueFor, scheduledSweepJobSchema } from '@dinoq/jobs';
import { validateId } from '@dinoq/storage';
import { notFound } from '../http/api-errors';
import { JobQueues, type SchedulerSnapshot } from '../repositories/job-queues.repository';
import { RunRecords } from '../repositories/run-records.repository';
import type { CreateScheduleRequest } from './schedule.schemas';

const EVALUATE_QUEUES = [QueueName.EvaluateCpu, QueueName.EvaluateGpu] as const;

/** Same request, same id: two replicas (or a retried POST) upsert one scheduler, never two. */
function defaultScheduleId(request: CreateScheduleRequest): string {
  const { runId, every, cron, tz, kinds, knn, linear } = request;
  const digest = createHash('sha256')
    .update(JSON.stringify({ runId, every, cron, tz, kinds: [...kinds].sort(), knn, linear }))
    .digest('hex');
  return `sweep-${digest.slice(0, 16)}`;
}

function view(scheduler: SchedulerSnapshot) {
  const data = (scheduler.data ?? {}) as {
    runId?: string | null;
    kinds?: string[];
    knn?: unknown;
    linear?: unknown;
  };
  return {
    scheduleId: scheduler.id,
    queue: scheduler.queue,
    runId: data.runId ?? null,
    kinds: data.kinds ?? [],
    every: scheduler.every === null ? null : scheduler.every / 1000,
    cron: scheduler.pattern,
    tz: scheduler.tz,
    nextRunAt: scheduler.next === null ? null : new Date(scheduler.next).toISOString(),
    knn: data.knn ?? null,
    linear: data.linear ?? null,
  };
}

export type ScheduleView = ReturnType<typeof view>;

/**
 * Periodic evaluations as BullMQ job schedulers on the evaluate queues. Upserting keeps one
 * scheduler per id, and a scheduler never produces a backlog for the time nobody consumed it.
 */
@Injectable()
export class SchedulesService {
  constructor(
    private readonly runs: RunRecords,
    private readonly jobs: JobQueues,
  ) {}

  async upsert(request: CreateScheduleRequest): Promise<{ created: boolean; schedule: ScheduleView }> {
    const scheduleId = validateId('scheduleId', request.scheduleId ?? defaultScheduleId(request));
    const runId = request.runId === undefined ? null : validateId('runId', request.runId);
    // A run-specific sweep goes where the run's evaluations go; an all-runs sweep to the CPU queue,
    // which GPU workers drain as well.
    const queue =
      runId === null ? QueueName.EvaluateCpu : evaluateQueueFor((await this.runs.get(runId)).device);
    const data = scheduledSweepJobSchema.parse({
      scheduleId,
      runId,
      kinds: request.kinds,
      knn: request.knn,
      linear: request.linear,
    });
    let existed = false;
    for (const other of EVALUATE_QUEUES) {
      if (!(await this.jobs.scheduler(other, scheduleId))) continue;
      existed = true;
      if (other !== queue) await this.jobs.removeScheduler(other, scheduleId);
    }
    const repeat =
      request.every !== undefined
        ? { every: request.every * 1000 }
        : { pattern: request.cron, tz: request.tz ?? 'UTC' };
    await this.jobs.upsertScheduler(queue, scheduleId, repeat, 'evaluate-sweep', data);
    const stored = await this.jobs.scheduler(queue, scheduleId);
    if (!stored)
      throw new Error(`job scheduler ${scheduleId} on ${queue} vanished right after it was written`);
    return { created: !existed, schedule: view(stored) };
  }

  async list(): Promise<ScheduleView[]> {
    const all = await Promise.all(EVALUATE_QUEUES.map((queue) => this.jobs.schedulers(queue)));
    return all.flat().map(view);
  }

  async remove(scheduleId: string): Promise<void> {
    let removed = false;
    for (const queue of EVALUATE_QUEUES)
      removed = (await this.jobs.removeScheduler(queue, scheduleId)) || removed;
    if (!removed) throw notFound(`schedule "${scheduleId}" does not exist`, 'scheduleId');
  }
}
