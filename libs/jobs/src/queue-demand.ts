import type { Queue } from 'bullmq';
import { allQueues, type QueueName } from './queues';
import type { ListedWorker } from './worker-registry';

/**
 * How far ahead a delayed job already asks for a pod: a GPU node started from zero needs minutes
 * (node provisioning, image pull, backend start-up) before it can take the job when it falls due.
 */
export const DEFAULT_DEMAND_LOOKAHEAD_MS = 120_000;

/**
 * What one queue asks of the worker pool, in pods:
 *
 *   demand = waiting + prioritized + dueDelayed + busyWorkers
 *
 * - `waiting`: the wait list (jobs ready to run).
 * - `prioritized`: ready jobs with a priority, kept by BullMQ in a sorted set, not the wait list.
 * - `dueDelayed`: delayed jobs (scheduler occurrences, retries in backoff) whose timestamp is at
 *   most now + lookahead. Only a running worker promotes them, so a pool at zero pods must be woken
 *   for them; the look-ahead has the pod up when they fall due.
 * - `busyWorkers`: the workers this queue's active jobs keep busy. A worker runs one job on its
 *   device at a time, but BullMQ lists as active also its jobs of other queues that wait for its
 *   device mutex; those need no pod of their own (no other pod can take a locked job). So active
 *   jobs are grouped by the worker holding them (BullMQ's `processedBy`) and each worker is
 *   charged to one queue only: the queue of the job it runs on its device (its heartbeat's
 *   `currentJob`), or else the first of its queues in catalogue order. Summed over the queues a
 *   pool consumes, this counts each busy pod once. An active job with no known worker (a crashed
 *   pod's, until a worker's stall check requeues it) counts as one pod: some worker must run to
 *   requeue it.
 *
 * `active` is every active job, for display; it is not part of the demand.
 */
export interface QueueDemand {
  queue: QueueName;
  waiting: number;
  prioritized: number;
  dueDelayed: number;
  active: number;
  busyWorkers: number;
  demand: number;
}

/** An active job and the worker that took it (null when BullMQ recorded none). */
export interface ActiveJobRef {
  queue: QueueName;
  jobId: string;
  worker: string | null;
}

export interface DemandOptions {
  /** Epoch milliseconds the due delayed jobs are measured from. */
  now: number;
  lookaheadMs: number;
  /** Only workers announcing this BullMQ prefix hold jobs of these queues. */
  queuePrefix: string;
}

const catalogueOrder = (queue: QueueName) => allQueues.indexOf(queue);

/**
 * Busy workers per queue: each worker holding active jobs is charged to one queue, the one of the
 * job it holds the device for (`holding`: worker id → `queue/jobId`, from heartbeats) when that
 * job is among its active ones, else the first of its jobs' queues in catalogue order.
 */
export function busyWorkersPerQueue(
  active: readonly ActiveJobRef[],
  holding: ReadonlyMap<string, string | null>,
): Map<QueueName, number> {
  const byWorker = new Map<string, ActiveJobRef[]>();
  active.forEach((job, index) => {
    // A job without a recorded worker cannot share a pod with any other.
    const key = job.worker === null ? `\0unknown-${index}` : job.worker;
    byWorker.set(key, [...(byWorker.get(key) ?? []), job]);
  });
  const busy = new Map<QueueName, number>();
  for (const [worker, jobs] of byWorker) {
    const held = holding.get(worker);
    const onDevice = jobs.find((job) => `${job.queue}/${job.jobId}` === held);
    const charged =
      onDevice?.queue ??
      jobs.map((job) => job.queue).sort((a, b) => catalogueOrder(a) - catalogueOrder(b))[0];
    busy.set(charged, (busy.get(charged) ?? 0) + 1);
  }
  return busy;
}

/** One queue's counts and active jobs, read with BullMQ's public getters. */
async function readQueue(queue: Queue, name: QueueName, dueBefore: number) {
  const [counts, dueDelayed, jobs] = await Promise.all([
    queue.getJobCounts('wait', 'prioritized'),
    // Counts jobs scheduled strictly before the cutoff (BullMQ stores ms × 4096 + a sequence).
    queue.getDelayedCount(dueBefore),
    queue.getActive(),
  ]);
  const active = jobs
    .filter((job) => job !== undefined && job !== null)
    .map((job): ActiveJobRef => ({ queue: name, jobId: String(job.id), worker: job.processedBy ?? null }));
  return { waiting: counts.wait ?? 0, prioritized: counts.prioritized ?? 0, dueDelayed, active };
}

/** The demand of every queue (see QueueDemand), from one read of each queue and the heartbeats. */
export async function readQueueDemand(
  queueOf: (name: QueueName) => Queue,
  workers: readonly ListedWorker[],
  options: DemandOptions,
): Promise<QueueDemand[]> {
  if (!Number.isSafeInteger(options.lookaheadMs) || options.lookaheadMs < 0) {
    throw new Error(`demand lookaheadMs must be a non-negative integer, got ${options.lookaheadMs}`);
  }
  const dueBefore = Math.floor(options.now) + options.lookaheadMs + 1;
  const reads = await Promise.all(allQueues.map((name) => readQueue(queueOf(name), name, dueBefore)));
  const holding = new Map(
    workers
      .filter((worker) => worker.queuePrefix === options.queuePrefix)
      .map((worker) => [worker.workerId, worker.currentJob] as const),
  );
  const busy = busyWorkersPerQueue(
    reads.flatMap((read) => read.active),
    holding,
  );
  return allQueues.map((queue, index) => {
    const { waiting, prioritized, dueDelayed, active } = reads[index];
    const busyWorkers = busy.get(queue) ?? 0;
    return {
      queue,
      waiting,
      prioritized,
      dueDelayed,
      active: active.length,
      busyWorkers,
      demand: waiting + prioritized + dueDelayed + busyWorkers,
    };
  });
}
