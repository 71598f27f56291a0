import { Worker, type Job } from 'bullmq';
import { QueueName, announceWorker, withdrawWorker, type WorkerAnnouncement } from '@dinoq/jobs';
import { AUTH, redisConnection, startTestApi, type TestApi } from './api-fixture';

const LOOKAHEAD_MS = 60_000;
let t: TestApi;
const workers: Worker[] = [];
const pods: string[] = [];

beforeAll(async () => {
  t = await startTestApi({ demandLookaheadMs: LOOKAHEAD_MS });
});
afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.close(true)));
  await Promise.all(pods.map((pod) => withdrawWorker(t.redis, pod)));
  await t.close();
});

async function demandOf(queue: QueueName) {
  const res = await t.http.get(`/metrics/queues/${queue}/demand`).set(AUTH);
  expect(res.status).toBe(200);
  return res.body;
}

/** Polls until `check` passes: answers are shared for up to 1 s and workers take jobs when they do. */
async function eventually<T>(read: () => Promise<T>, check: (value: T) => void): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    try {
      check(value);
      return value;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function announce(workerId: string, currentJob: string | null): Promise<void> {
  const now = new Date().toISOString();
  const announcement: WorkerAnnouncement = {
    workerId,
    hostname: workerId,
    pid: 1,
    deviceClass: 'gpu',
    backend: 'tensorflow',
    kernels: 'native',
    cores: 8,
    trainReplicas: '1',
    dataThreads: '1',
    queues: [QueueName.TrainGpu, QueueName.EvaluateGpu],
    startedAt: now,
    lastSeen: now,
    currentJob,
    queuePrefix: t.prefix,
  };
  return announceWorker(t.redis, announcement);
}

/** A BullMQ worker of pod `pod` whose jobs run until `gate` opens (named like the real worker's). */
function podWorker(
  pod: string,
  queue: QueueName,
  gate: Promise<void>,
  onStart?: (job: Job) => Promise<void>,
) {
  const worker = new Worker(
    queue,
    async (job) => {
      await onStart?.(job);
      await gate;
    },
    { connection: redisConnection, prefix: t.prefix, name: pod, concurrency: 1 },
  );
  workers.push(worker);
  return worker;
}

describe('queue demand', () => {
  it('counts waiting, prioritized and delayed jobs due within the look-ahead, not later ones', async () => {
    const queue = t.queue(QueueName.EvaluateCpu);
    await queue.add('evaluate', {}, { jobId: 'ready' });
    await queue.add('evaluate', {}, { jobId: 'urgent', priority: 1 });
    await queue.add('evaluate', {}, { jobId: 'soon', delay: LOOKAHEAD_MS / 2 });
    await queue.add('evaluate', {}, { jobId: 'in-an-hour', delay: 3_600_000 });
    const body = await eventually(
      () => demandOf(QueueName.EvaluateCpu),
      (value) => expect(value.demand).toBe(3),
    );
    expect(body).toEqual({
      queue: 'evaluate-cpu',
      waiting: 1,
      prioritized: 1,
      dueDelayed: 1,
      active: 0,
      busyWorkers: 0,
      demand: 3,
      lookaheadMs: LOOKAHEAD_MS,
    });
    expect(await queue.getDelayedCount()).toBe(2);

    const metrics = await t.http.get('/metrics').set(AUTH);
    expect(metrics.text).toContain('# TYPE dinoq_queue_demand gauge');
    expect(metrics.text).toMatch(/dinoq_queue_demand\{queue="evaluate-cpu"\} 3\n/);
    expect(metrics.text).toMatch(/dinoq_queue_demand\{queue="import"\} 0\n/);
  });

  it('counts a pod once when a second job of it waits for its device', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    pods.push('pod-a', 'pod-b');
    await announce('pod-a', null);
    // pod-a runs a training shard on its device; its evaluation waits for the device mutex.
    podWorker('pod-a', QueueName.TrainGpu, gate, (job) => announce('pod-a', `train-gpu/${job.id}`));
    podWorker('pod-a', QueueName.EvaluateGpu, gate);
    await t.queue(QueueName.TrainGpu).add('train-shard', {}, { jobId: 'shard-0' });
    await t.queue(QueueName.EvaluateGpu).add('evaluate', {}, { jobId: 'eval-0' });

    const held = await eventually(
      async () => [await demandOf(QueueName.TrainGpu), await demandOf(QueueName.EvaluateGpu)],
      ([train, evaluate]) => {
        expect(train).toMatchObject({ active: 1, busyWorkers: 1, demand: 1 });
        expect(evaluate).toMatchObject({ active: 1, busyWorkers: 0, demand: 0 });
      },
    );
    expect(held[0].demand + held[1].demand).toBe(1);

    // A second pod with a job of its own is a second pod of demand; a job nobody took is a third.
    await announce('pod-b', null);
    podWorker('pod-b', QueueName.EvaluateGpu, gate, (job) => announce('pod-b', `evaluate-gpu/${job.id}`));
    await t.queue(QueueName.EvaluateGpu).add('evaluate', {}, { jobId: 'eval-1' });
    await t.queue(QueueName.TrainGpu).add('train-shard', {}, { jobId: 'shard-1' });
    await eventually(
      async () => [await demandOf(QueueName.TrainGpu), await demandOf(QueueName.EvaluateGpu)],
      ([train, evaluate]) => {
        expect(train).toMatchObject({ waiting: 1, active: 1, busyWorkers: 1, demand: 2 });
        expect(evaluate).toMatchObject({ waiting: 0, active: 2, busyWorkers: 1, demand: 1 });
      },
    );
    open();
  });

  it('answers 404 for an unknown queue and 401 without a key', async () => {
    const unknown = await t.http.get('/metrics/queues/nope/demand').set(AUTH);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ field: 'queue' });
    expect(unknown.body.message).toContain('train-gpu');
    expect((await t.http.get('/metrics/queues/train-gpu/demand')).status).toBe(401);
  });
});
