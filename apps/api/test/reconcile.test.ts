import { Worker } from 'bullmq';
import { QueueName, runRecordSchema } from '@dinoq/jobs';
import { commitCheckpoint, runRecordKey } from '@dinoq/storage';
import { bootstrapApi } from '../src/bootstrap';
import { ReconcileService } from '../src/reconcile/reconcile.service';
import { RunIndexRepository } from '../src/repositories/run-index.repository';
import { AUTH, TINY_RUN, redisConnection, seedDataset, startTestApi, type TestApi } from './api-fixture';

let t: TestApi;
let reconcile: ReconcileService;

async function setRun(runId: string, change: Record<string, unknown>) {
  const current = runRecordSchema.parse(await t.store.getJson(runRecordKey(runId)));
  await t.store.putJson(runRecordKey(runId), { ...current, ...change });
}

async function liveJobIds(queue: QueueName): Promise<string[]> {
  return (await t.queue(queue).getJobs(['waiting', 'active', 'delayed', 'prioritized']))
    .map((job) => String(job.id))
    .sort();
}

beforeAll(async () => {
  t = await startTestApi();
  reconcile = t.api.app.get(ReconcileService);
  await seedDataset(t.store, 'fmnist');
  for (const [runId, device] of [
    ['rc-cpu', 'cpu'],
    ['rc-gpu', 'gpu'],
    ['rc-cancelling', 'cpu'],
    ['rc-done', 'cpu'],
    ['rc-failed', 'cpu'],
  ]) {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId, device })
      .expect(201);
  }
  await setRun('rc-cancelling', { status: 'running', cancelRequested: true });
  await setRun('rc-done', { status: 'completed' });
  await setRun('rc-failed', { status: 'failed' });
  await setRun('rc-gpu', { status: 'running', generation: 2 });
});
afterAll(() => t.close());

describe('reconciliation', () => {
  it('re-enqueues the next shard of every active run after Redis lost its queues', async () => {
    await t.flushQueues();
    expect(await liveJobIds(QueueName.TrainCpu)).toEqual([]);

    const report = await reconcile.reconcileOnce();
    expect(report.ran).toBe(true);
    // The wipe took the listing index too: every record is read from S3 and the index rebuilt.
    expect(report.scope).toBe('all');
    const index = t.api.app.get(RunIndexRepository);
    expect(await index.isBuilt()).toBe(true);
    expect(await index.count()).toBe(5);
    expect(report.checked).toBe(2);
    expect(report.requeued.map((entry) => `${entry.queue}/${entry.jobId}`).sort()).toEqual([
      'train-cpu/rc-cpu-g0-shard-0',
      'train-gpu/rc-gpu-g2-shard-0',
    ]);
    expect(await liveJobIds(QueueName.TrainCpu)).toEqual(['rc-cpu-g0-shard-0']);
    expect(await liveJobIds(QueueName.TrainGpu)).toEqual(['rc-gpu-g2-shard-0']);
    const job = await t.queue(QueueName.TrainGpu).getJob('rc-gpu-g2-shard-0');
    expect(job?.data).toEqual({ runId: 'rc-gpu', shard: 0, fromStep: 0, toStep: 50 });
  });

  it('leaves existing jobs alone, reading only the runs the index holds as active', async () => {
    const report = await reconcile.reconcileOnce();
    expect(report).toMatchObject({
      ran: true,
      scope: 'active',
      checked: 2,
      requeued: [],
      stuck: [],
      errors: [],
    });
    expect(await t.queue(QueueName.TrainCpu).getJobCountByTypes('waiting')).toBe(1);
  });

  it('continues from the newest committed checkpoint, even when run.json lags behind', async () => {
    await commitCheckpoint(t.store, 'rc-cpu', 50, { 'student.safetensors': new Uint8Array([1]) });
    await t.flushQueues();
    const report = await reconcile.reconcileOnce();
    expect(report.requeued.map((entry) => entry.jobId).sort()).toEqual([
      'rc-cpu-g0-shard-1',
      'rc-gpu-g2-shard-0',
    ]);
    const job = await t.queue(QueueName.TrainCpu).getJob('rc-cpu-g0-shard-1');
    expect(job?.data).toEqual({ runId: 'rc-cpu', shard: 1, fromStep: 50, toStep: 100 });
  });

  it('skips runs whose every step is committed', async () => {
    await commitCheckpoint(t.store, 'rc-cpu', 100, { 'student.safetensors': new Uint8Array([2]) });
    await t.flushQueues();
    const report = await reconcile.reconcileOnce();
    expect(report.requeued.map((entry) => entry.runId)).toEqual(['rc-gpu']);
  });

  /** Adds the shard job and lets a real BullMQ worker fail it for good, as after its last attempt. */
  async function failForGood(jobId: string, reason: string) {
    await t
      .queue(QueueName.TrainGpu)
      .add('train-shard', { runId: 'rc-gpu', shard: 0, fromStep: 0, toStep: 50 }, { jobId, attempts: 1 });
    const worker = new Worker(QueueName.TrainGpu, async () => Promise.reject(new Error(reason)), {
      connection: redisConnection,
      prefix: t.prefix,
    });
    await new Promise<void>((resolve) => worker.once('failed', () => resolve()));
    await worker.close();
  }

  it('starts a new attempt of a shard whose job failed for good, within the run-level retry budget', async () => {
    await t.flushQueues();
    // A worker that fails the shard for good but dies before recording it in run.json.
    await failForGood('rc-gpu-g2-shard-0', 'out of memory');
    const report = await reconcile.reconcileOnce();
    expect(report.requeued).toEqual([]);
    expect(report.stuck).toEqual([
      { runId: 'rc-gpu', jobId: 'rc-gpu-g2-shard-0', state: 'failed', outcome: 'retried' },
    ]);
    expect(await liveJobIds(QueueName.TrainGpu)).toEqual(['rc-gpu-g3-shard-0']);
    const run = runRecordSchema.parse(await t.store.getJson(runRecordKey('rc-gpu')));
    expect(run).toMatchObject({ status: 'queued', generation: 3, retries: 1, error: null });
    expect(run.lastRetryReason).toMatch(/shard 0 \(job rc-gpu-g2-shard-0\) failed: out of memory/);
    // A second pass over the same failure changes nothing.
    expect((await reconcile.reconcileOnce()).stuck).toEqual([]);
  });

  it('fails the run with the reason once its retry budget is spent', async () => {
    await t.flushQueues();
    await setRun('rc-gpu', { retries: 3, retryBudget: 3 });
    await failForGood('rc-gpu-g3-shard-0', 'job stalled more than allowable limit');
    const report = await reconcile.reconcileOnce();
    expect(report.stuck).toEqual([
      { runId: 'rc-gpu', jobId: 'rc-gpu-g3-shard-0', state: 'failed', outcome: 'failed' },
    ]);
    expect(await liveJobIds(QueueName.TrainGpu)).toEqual([]);
    const run = runRecordSchema.parse(await t.store.getJson(runRecordKey('rc-gpu')));
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/job stalled more than allowable limit \(run-level retries spent: 3 of 3\)$/);
    await setRun('rc-gpu', { status: 'running' });
  });

  it('does nothing while another replica holds the lock', async () => {
    await t.flushQueues();
    await t.redis.set(`${t.prefix}:api:reconcile-lock`, 'other-replica', 'PX', 10_000);
    const report = await reconcile.reconcileOnce();
    expect(report).toMatchObject({ ran: false, requeued: [] });
    expect(await liveJobIds(QueueName.TrainGpu)).toEqual([]);
    expect(await t.redis.get(`${t.prefix}:api:reconcile-lock`)).toBe('other-replica');
    await t.redis.del(`${t.prefix}:api:reconcile-lock`);
    expect((await reconcile.reconcileOnce()).ran).toBe(true);
  });

  it('runs on start and on its timer in a second replica', async () => {
    await t.flushQueues();
    const replica = await bootstrapApi({
      store: t.store,
      redisConnection,
      apiKeys: ['replica-key'],
      queuePrefix: t.prefix,
      reconcileIntervalMs: 200,
      logger: false,
    });
    try {
      const waitForJob = async () => {
        for (let attempt = 0; attempt < 40; attempt += 1) {
          if ((await liveJobIds(QueueName.TrainGpu)).length > 0) return liveJobIds(QueueName.TrainGpu);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        return [];
      };
      expect(await waitForJob()).toEqual(['rc-gpu-g3-shard-0']);
      await t.flushQueues();
      expect(await waitForJob()).toEqual(['rc-gpu-g3-shard-0']);
    } finally {
      await replica.close();
    }
  });
});
