import { Injectable } from '@nestjs/common';
import { continuationJob, lastCommittedStep, nextShard } from '@dinoq/jobs';
import { UnreadableObjectError } from '@dinoq/storage';
import { conflict } from '../http/api-errors';
import { JobQueues } from '../repositories/job-queues.repository';
import { RunRecords } from '../repositories/run-records.repository';
import { runView } from './run-view';

/**
 * Cancel, resume and repair: the state transitions a client may ask for. Each is decided inside a
 * compare-and-swap of run.json, so of concurrent requests for one transition exactly one wins and
 * the others see the state it left (409), and a worker's concurrent update is never lost.
 */
@Injectable()
export class RunLifecycleService {
  constructor(
    private readonly runs: RunRecords,
    private readonly jobs: JobQueues,
  ) {}

  /**
   * Sets cancelRequested first (so neither the worker nor reconciliation queues more shards), then
   * removes the shard job if it has not started. A running shard finishes and commits; the worker
   * then marks the run cancelled. An unreadable run.json is rebuilt from spec.json as cancelled.
   */
  async cancel(runId: string) {
    const committed = await this.runs.committedSteps(runId);
    let requested;
    try {
      requested = await this.runs.update(runId, (current) => {
        if (current.status === 'cancelled') return null;
        if (current.status === 'completed' || current.status === 'failed') {
          throw conflict(`run "${runId}" is ${current.status}; only queued or running runs can be cancelled`);
        }
        return current.cancelRequested ? null : { cancelRequested: true };
      });
    } catch (error) {
      if (!(error instanceof UnreadableObjectError)) throw error;
      const { record } = await this.runs.repair(runId, 'cancelled', committed);
      return {
        ...runView(record, committed),
        removedJobId: null,
        stopsAfterCurrentShard: false,
        repaired: true,
      };
    }
    if (requested.status === 'cancelled') {
      return { ...runView(requested, committed), removedJobId: null, stopsAfterCurrentShard: false };
    }
    // A round's merge job waits for its slices; removing it removes the slices that have not started.
    const next = continuationJob(requested, committed);
    const jobId = next?.jobId ?? null;
    const outcome = next === null ? 'absent' : await this.jobs.removeIfWaiting(next.queue, next.jobId);
    const running = outcome === 'active';
    const updated = running
      ? requested
      : await this.runs.update(runId, (current) =>
          current.status === 'queued' || current.status === 'running' ? { status: 'cancelled' } : null,
        );
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
    const committed = await this.runs.committedSteps(runId);
    const updated = await this.runs.update(runId, (current) => {
      if (current.status !== 'failed' && current.status !== 'cancelled') {
        const detail = current.cancelRequested
          ? 'a cancellation is still in progress; resume once the current shard has stopped'
          : 'only failed or cancelled runs can be resumed';
        throw conflict(`run "${runId}" is ${current.status}: ${detail}`);
      }
      const fromStep = lastCommittedStep(current, committed);
      if (nextShard(current, fromStep) === null) {
        throw conflict(`run "${runId}" has committed all ${current.totalSteps} steps; nothing to resume`);
      }
      return {
        status: 'queued',
        generation: current.generation + 1,
        cancelRequested: false,
        error: null,
        lastCommittedStep: fromStep,
        committedSteps: committed.length > 0 ? committed : current.committedSteps,
      };
    });
    const next = continuationJob(updated, committed);
    if (!next) throw conflict(`run "${runId}" has nothing left to train`);
    const job = await this.jobs.addContinuation(next);
    return { ...runView(updated, committed), job: { id: job.id, queue: job.queue, state: job.state } };
  }

  /**
   * Sets the slice count of the run's next rounds. The round in flight keeps its slices (its flow and
   * its slices' results are keyed by them); the merge that ends it plans the next round with the new
   * count, and so does reconciliation if it has to re-create a round.
   */
  async resize(runId: string, slices: number) {
    const updated = await this.runs.update(runId, (current) => {
      if (!current.rounds) {
        throw conflict(
          `run "${runId}" trains in sequential shards (created with parallel.slices 1); only runs created ` +
            'with more than one slice train in rounds and can be resized',
        );
      }
      if (current.status !== 'queued' && current.status !== 'running') {
        throw conflict(`run "${runId}" is ${current.status}; only queued or running runs can be resized`);
      }
      return current.slices === slices ? null : { slices };
    });
    return runView(updated, await this.runs.committedSteps(runId));
  }

  /**
   * Rebuilds an unreadable run.json from the run's spec.json and its committed checkpoints, as a
   * failed run that can then be resumed. A readable record is left as it is (`repaired: false`).
   */
  async repair(runId: string) {
    const committed = await this.runs.committedSteps(runId);
    const { record, repaired } = await this.runs.repair(runId, 'failed', committed);
    return { ...runView(record, committed), repaired };
  }
}
