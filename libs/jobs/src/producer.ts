import { FlowProducer, Queue, type ConnectionOptions, type Job, type JobsOptions } from 'bullmq';
import { QUEUE_PREFIX, QueueName, allQueues } from './queues';
import { jobCatalogue, type JobName, type JobPayload } from './payloads';
import type { Continuation } from './shard-failure';

/** Retries with backoff resume from the last commit, so a few attempts are cheap. */
export const defaultJobOptions: JobsOptions = {
  attempts: 4,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600, count: 1000 },
  removeOnFail: { age: 30 * 24 * 3600, count: 5000 },
};

/**
 * Type-checked enqueueing shared by the API and the workers: the payload is validated against
 * the catalogue before anything reaches Redis, and the queue must be one the job may run on.
 */
export class JobProducer {
  private readonly queues = new Map<QueueName, Queue>();
  private flows: FlowProducer | null = null;

  constructor(
    private readonly connection: ConnectionOptions,
    /** BullMQ key prefix; tests use their own so they never touch a live stack's queues. */
    readonly prefix: string = QUEUE_PREFIX,
    /** Connection errors of a queue; without a listener they would be unhandled 'error' events. */
    private readonly onQueueError?: (queue: QueueName, error: Error) => void,
  ) {}

  queue(name: QueueName): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.connection, prefix: this.prefix, defaultJobOptions });
      const onError = this.onQueueError;
      if (onError) q.on('error', (error: Error) => onError(name, error));
      this.queues.set(name, q);
    }
    return q;
  }

  async add<N extends JobName>(queue: QueueName, name: N, data: JobPayload<N>, opts: JobsOptions = {}) {
    const entry = jobCatalogue[name];
    if (!(entry.queues as readonly QueueName[]).includes(queue)) {
      throw new Error(`job "${name}" cannot run on queue "${queue}" (allowed: ${entry.queues.join(', ')})`);
    }
    const payload = entry.schema.parse(data);
    return this.queue(queue).add(name, payload, opts);
  }

  /**
   * Adds the work that continues a run: a shard's job, or a round's flow (the merge job waits in
   * `waiting-children` until every slice job has completed; a slice that fails for good fails it).
   * Every id is deterministic and BullMQ keeps an existing job, so adding a continuation twice is
   * harmless. Returns the shard's or the merge's job.
   */
  async addContinuation(work: Continuation): Promise<Job> {
    if (work.kind === 'shard') return this.add(work.queue, 'train-shard', work.data, { jobId: work.jobId });
    const check = <N extends JobName>(name: N, data: JobPayload<N>) => {
      const entry = jobCatalogue[name];
      if (!(entry.queues as readonly QueueName[]).includes(work.queue))
        throw new Error(`job "${name}" cannot run on queue "${work.queue}"`);
      return entry.schema.parse(data);
    };
    this.flows ??= this.newFlowProducer();
    const node = await this.flows.add({
      name: 'merge-round',
      queueName: work.queue,
      data: check('merge-round', work.data),
      opts: { ...defaultJobOptions, jobId: work.jobId },
      children: work.slices.map((slice) => ({
        name: 'train-slice',
        queueName: work.queue,
        data: check('train-slice', slice.data),
        opts: { ...defaultJobOptions, jobId: slice.jobId, failParentOnFailure: true },
      })),
    });
    return node.job;
  }

  /** Waiting + active + delayed counts of every queue, for health and metrics. */
  async counts(): Promise<Record<QueueName, Record<string, number>>> {
    const out = {} as Record<QueueName, Record<string, number>>;
    for (const q of allQueues)
      out[q] = await this.queue(q).getJobCounts(
        'waiting',
        'active',
        'delayed',
        'failed',
        'completed',
        'prioritized',
      );
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
    await this.flows?.close();
    this.flows = null;
  }

  private newFlowProducer(): FlowProducer {
    const flows = new FlowProducer({ connection: this.connection, prefix: this.prefix });
    const onError = this.onQueueError;
    if (onError) flows.on('error', (error: Error) => onError(QueueName.TrainCpu, error));
    return flows;
  }
}
