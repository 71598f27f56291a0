import { Injectable } from '@nestjs/common';
import { nextShard, shardJobId, shardRange, trainQueueFor, type RunRecord } from '@dinoq/jobs';
import { conflict } from '../http/api-errors';
import { JobQueues } from '../repositories/job-queues.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { runView } from './run-view';

/** The newest committed step: the checkpoint store's COMMITTED records win over a stale run.json. */
export function lastCommittedStep(run: RunRecord, committedSteps: number[]): number | null {
  const stored = committedSteps.length > 0 ? committedSteps[committedSteps.length - 1] : null;
  if (stored === null) return run.lastCommittedStep;
  return run.lastCommittedStep === null ? stored : Math.max(stored, run.lastCommittedStep);
}

/** Cancel and resume: the state transitions a client may ask for. */
@Injectable()
export class RunLifecycleService {
  constructor(
    private readonly runs: RunRecords,
    private readonly jobs: JobQueues,
  ) {}

  /**
   * Sets cancelRequested first (so neither the worker nor reconciliation queues more shards), then
   * removes the shard job if it has not started. A running shard finishes and commits; the worker
   * then marks the run cancelled.
   */
  async cancel(runId: string) {
    const run = await this.runs.get(runId);
    if (run.status === 'cancelled')
      return { ...runView(run), removedJobId: null, stopsAfterCurrentShard: false };
    if (run.status === 'completed' || run.status === 'failed') {
      throw conflict(`run "${runId}" is ${run.status}; only queued or running runs can be cancelled`);
    }
    let updated = await this.runs.update(runId, () => ({ cancelRequested: true }));
    const committed = await this.runs.committedSteps(runId);
    const shard = nextShard(updated, lastCommittedStep(updated, committed));
    const jobId = shard === null ? null : shardJobId(runId, updated.generation, shard);
    const outcome =
      jobId === null ? 'absent' : await this.jobs.removeIfWaiting(trainQueueFor(updated.device), jobId);
    const running = outcome === 'active';
    if (!running) {
      updated = await this.runs.update(runId, (current) =>
        current.status === 'queued' || current.status === 'running' ? { status: 'cancelled' } : {},
      );
    }
    return {
      ...runView(updated, committed),
      removedJobId: outcome === 'removed' ? jobId : null,
      stopsAfterCurrentShard: running,
    };
  }

  /**
   * Continues a failed or cancelled run from its newest commit under a new generation, so the new
   * shard job ids never collide with jobs of the earlier attempt that BullMQ may still hold.
   */
  async resume(runId: string) {
    const run = await this.runs.get(runId);
    if (run.status !== 'failed' && run.status !== 'cancelled') {
      const detail = run.cancelRequested
        ? 'a cancellation is still in progress; resume once the current shard has stopped'
        : 'only failed or cancelled runs can be resumed';
      throw conflict(`run "${runId}" is ${run.status}: ${detail}`);
    }
    const committed = await this.runs.committedSteps(runId);
    const fromStep = lastCommittedStep(run, committed);
    const shard = nextShard(run, fromStep);
    if (shard === null)
      throw conflict(`run "${runId}" has committed all ${run.totalSteps} steps; nothing to resume`);
    const generation = run.generation + 1;
    const updated = await this.runs.update(runId, (current) => ({
      status: 'queued',
      generation,
      cancelRequested: false,
      error: null,
      lastCommittedStep: fromStep,
      committedSteps: committed.length > 0 ? committed : current.committedSteps,
    }));
    const job = await this.jobs.add(
      trainQueueFor(updated.device),
      'train-shard',
      { runId, shard, ...shardRange(updated, shard) },
      shardJobId(runId, generation, shard),
    );
    return { ...runView(updated, committed), job: { id: job.id, queue: job.queue, state: job.state } };
  }
}
