import type { RunRecord } from '@dinoq/jobs';
import {
  afterCommit,
  cancelRun,
  catchUpWithCommits,
  claimRun,
  failRun,
  planShard,
  recordCommit,
  withCommittedStep,
} from '../src/shard-plan';

// 10 steps in shards of 4: [0,4) [4,8) [8,10)
const run = {
  status: 'running' as const,
  cancelRequested: false,
  totalSteps: 10,
  stepsPerShard: 4,
  generation: 2,
};
const shard = (n: number) => {
  const fromStep = n * 4;
  return { runId: 'r', shard: n, fromStep, toStep: Math.min(fromStep + 4, 10) };
};

describe('planShard', () => {
  test('the first shard of a fresh run trains from the seed', () => {
    expect(planShard({ ...run, status: 'queued' }, shard(0), null)).toEqual({
      kind: 'train',
      resumeFrom: null,
      startStep: 0,
      toStep: 4,
      gap: false,
    });
  });

  test('a shard resumes from the previous shard’s commit', () => {
    expect(planShard(run, shard(1), 4)).toEqual({
      kind: 'train',
      resumeFrom: 4,
      startStep: 4,
      toStep: 8,
      gap: false,
    });
  });

  test('a retried shard starts again from the newest commit, its own fromStep', () => {
    // The first attempt died mid-shard: nothing past step 4 was committed.
    expect(planShard(run, shard(1), 4)).toMatchObject({ kind: 'train', resumeFrom: 4, startStep: 4 });
  });

  test('a shard whose end is already committed is a no-op that names the next shard', () => {
    expect(planShard(run, shard(1), 8)).toEqual({
      kind: 'done',
      committedStep: 8,
      status: 'running',
      next: { shard: 2, fromStep: 8, toStep: 10, generation: 2 },
    });
    // A stale duplicate far behind the run still points at the shard that continues it.
    expect(planShard(run, shard(0), 8)).toMatchObject({ kind: 'done', next: { shard: 2 } });
  });

  test('the last shard already committed completes the run with no next shard', () => {
    expect(planShard(run, shard(2), 10)).toEqual({
      kind: 'done',
      committedStep: 10,
      status: 'completed',
      next: null,
    });
  });

  test('cancellation wins over everything, even a committed shard', () => {
    const cancelled = { ...run, cancelRequested: true };
    expect(planShard(cancelled, shard(1), 4)).toEqual({ kind: 'cancel' });
    expect(planShard(cancelled, shard(1), 8)).toEqual({ kind: 'cancel' });
  });

  test('jobs of failed, cancelled or completed runs do nothing', () => {
    expect(planShard({ ...run, status: 'failed' }, shard(1), 4)).toMatchObject({ kind: 'skip' });
    expect(planShard({ ...run, status: 'cancelled' }, shard(1), 4)).toMatchObject({ kind: 'skip' });
    expect(planShard({ ...run, status: 'completed' }, shard(1), 4)).toMatchObject({ kind: 'skip' });
  });

  test('a shard with missing earlier commits trains them too and says so', () => {
    expect(planShard(run, shard(2), 4)).toEqual({
      kind: 'train',
      resumeFrom: 4,
      startStep: 4,
      toStep: 10,
      gap: true,
    });
    expect(planShard(run, shard(1), null)).toMatchObject({ startStep: 0, resumeFrom: null, gap: true });
  });

  test('rejects shard ranges that do not fit the run', () => {
    expect(() => planShard(run, { runId: 'r', shard: 3, fromStep: 12, toStep: 16 }, 8)).toThrow(
      /past the run's 10 steps/,
    );
    expect(() => planShard(run, { runId: 'r', shard: 1, fromStep: 4, toStep: 4 }, 4)).toThrow(
      /must be below toStep/,
    );
  });
});

describe('afterCommit', () => {
  test('names the next shard with the run’s generation', () => {
    expect(afterCommit(run, 4)).toEqual({
      status: 'running',
      next: { shard: 1, fromStep: 4, toStep: 8, generation: 2 },
    });
  });

  test('the last commit completes the run, even when a cancel was requested', () => {
    expect(afterCommit(run, 10)).toEqual({ status: 'completed', next: null });
    expect(afterCommit({ ...run, cancelRequested: true }, 10)).toEqual({ status: 'completed', next: null });
  });

  test('a cancel requested during the shard stops the run after it', () => {
    expect(afterCommit({ ...run, cancelRequested: true }, 4)).toEqual({ status: 'cancelled', next: null });
  });
});

describe('withCommittedStep', () => {
  test('keeps the list sorted and free of duplicates', () => {
    expect(withCommittedStep([4, 8], 8)).toEqual([4, 8]);
    expect(withCommittedStep([8], 4)).toEqual([4, 8]);
    expect(withCommittedStep([], 4)).toEqual([4]);
  });
});

describe('run record changes', () => {
  const record = {
    ...run,
    status: 'running',
    workerId: 'w1',
    backend: 'wasm',
    lastCommittedStep: 4,
    committedSteps: [4],
    latestMetrics: null,
    error: null,
  } as unknown as RunRecord;

  test('a worker claims a queued run or one another worker had, and writes nothing otherwise', () => {
    expect(claimRun('w1', 'wasm')({ ...record, status: 'queued' })).toEqual({
      status: 'running',
      workerId: 'w1',
      backend: 'wasm',
    });
    expect(claimRun('w2', 'wasm')(record)).toEqual({ status: 'running', workerId: 'w2', backend: 'wasm' });
    expect(claimRun('w1', 'cpu')({ ...record, status: 'cancelled' })).toMatchObject({ status: 'cancelled' });
    expect(claimRun('w1', 'wasm')(record)).toBeNull();
  });

  test('cancelling stops an active run and writes nothing to a stopped one', () => {
    expect(cancelRun(record)).toEqual({ status: 'cancelled' });
    expect(cancelRun({ ...record, status: 'failed' })).toBeNull();
  });

  test('a commit is listed with its metrics and moves the run on', () => {
    const metrics = { step: 7, loss: 8 };
    expect(recordCommit(8, metrics, 'w1', 'wasm')(record)).toEqual({
      lastCommittedStep: 8,
      committedSteps: [4, 8],
      latestMetrics: metrics,
      backend: 'wasm',
      workerId: 'w1',
      status: 'running',
      error: null,
    });
    expect(recordCommit(10, metrics, 'w1', 'wasm')(record)).toMatchObject({ status: 'completed' });
    // A run cancelled while the shard trained keeps its status.
    expect(recordCommit(8, metrics, 'w1', 'wasm')({ ...record, status: 'cancelled' })).toMatchObject({
      status: 'cancelled',
    });
  });

  test('the record catches up with commits it does not list yet', () => {
    const plan = { kind: 'done' as const, committedStep: 8, status: 'running' as const, next: null };
    expect(catchUpWithCommits(plan, [4, 8])(record)).toEqual({
      lastCommittedStep: 8,
      committedSteps: [4, 8],
      status: 'running',
    });
  });

  test('a non-finite loss fails the run with the reason', () => {
    expect(failRun('loss is NaN at step 5', 'w1')(record)).toEqual({
      status: 'failed',
      error: 'loss is NaN at step 5',
      workerId: 'w1',
    });
  });
});
