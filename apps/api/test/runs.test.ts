import { Worker, type Job } from 'bullmq';
import { QueueName, runRecordSchema, stepMetricsLine } from '@dinoq/jobs';
import { commitCheckpoint, metricsKey, runRecordKey } from '@dinoq/storage';
import { AUTH, TINY_RUN, redisConnection, seedDataset, startTestApi, type TestApi } from './api-fixture';

let t: TestApi;

beforeAll(async () => {
  t = await startTestApi();
  await seedDataset(t.store, 'fmnist');
});
afterAll(() => t.close());

async function storedRun(runId: string) {
  const raw = await t.store.getJson<unknown>(runRecordKey(runId));
  return raw === null ? null : runRecordSchema.parse(raw);
}

/** A metrics line as a worker writes it. */
function metricsLine(step: number) {
  const metrics = {
    step,
    epoch: Math.floor(step / 10),
    loss: 10 - step / 10,
    lr: 0.001,
    weightDecay: 0.04,
    momentum: 0.996,
    teacherTemp: 0.04,
    teacherEntropy: 3,
    klTeacherStudent: 0.5,
    maxGradNorm: 1,
    imagesPerSecond: 50,
    stepMs: 1000,
    dataWaitMs: 0,
    dataMs: 20,
    replicas: 1,
    backend: 'wasm',
    numTensors: 310,
  };
  return stepMetricsLine(metrics, 0, new Date(0));
}

async function jobIds(queue: QueueName): Promise<string[]> {
  const jobs = await t.queue(queue).getJobs(['waiting', 'active', 'delayed', 'prioritized']);
  return jobs.map((job) => String(job.id)).sort();
}

describe('authentication', () => {
  it('answers 401 without a key, with a malformed header and with a wrong key', async () => {
    const missing = await t.http.get('/runs');
    expect(missing.status).toBe(401);
    expect(missing.body.message).toMatch(/missing Authorization header/);
    expect(missing.headers['www-authenticate']).toMatch(/^Bearer/);

    const malformed = await t.http.get('/runs').set('Authorization', 'Basic abc');
    expect(malformed.status).toBe(401);
    expect(malformed.body.message).toMatch(/malformed/);

    const wrong = await t.http.get('/runs').set('Authorization', 'Bearer test-key-0123456788');
    expect(wrong.status).toBe(401);
    expect(wrong.body.message).toBe('invalid API key');

    const second = await t.http.get('/runs').set('Authorization', 'bearer second-key');
    expect(second.status).toBe(200);
  });

  it('checks the key before validating or writing anything', async () => {
    const res = await t.http.post('/runs').send({ ...TINY_RUN, runId: 'no-auth' });
    expect(res.status).toBe(401);
    expect(await storedRun('no-auth')).toBeNull();
  });
});

describe('POST /runs', () => {
  it('writes run.json and queues shard 0 on the CPU training queue', async () => {
    const res = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-cpu', device: 'cpu' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      runId: 'run-cpu',
      status: 'queued',
      generation: 0,
      plan: { datasetSize: 640, itersPerEpoch: 10, totalSteps: 100, stepsPerShard: 50, numShards: 2 },
      progress: { shard: 0, numShards: 2, step: 0, epoch: 0 },
      job: { id: 'run-cpu-g0-shard-0', queue: 'train-cpu', state: 'waiting' },
    });

    const record = await storedRun('run-cpu');
    expect(record).toMatchObject({
      status: 'queued',
      generation: 0,
      device: 'cpu',
      datasetName: 'fmnist',
      cancelRequested: false,
    });
    expect((record!.config as { model: { embedDim: number } }).model.embedDim).toBe(128);

    const job = await t.queue(QueueName.TrainCpu).getJob('run-cpu-g0-shard-0');
    expect(job?.name).toBe('train-shard');
    expect(job?.data).toEqual({ runId: 'run-cpu', shard: 0, fromStep: 0, toStep: 50 });
    expect(await jobIds(QueueName.TrainGpu)).not.toContain('run-cpu-g0-shard-0');
  });

  it('routes gpu runs to the GPU queue and "any" to the CPU queue', async () => {
    const gpu = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-gpu', device: 'gpu' });
    expect(gpu.status).toBe(201);
    expect(await t.queue(QueueName.TrainGpu).getJob('run-gpu-g0-shard-0')).toBeDefined();
    expect(await jobIds(QueueName.TrainCpu)).not.toContain('run-gpu-g0-shard-0');

    const any = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-any' });
    expect(any.body.device).toBe('any');
    expect(await t.queue(QueueName.TrainCpu).getJob('run-any-g0-shard-0')).toBeDefined();
  });

  it('generates a valid run id when none is given and refuses an existing one', async () => {
    const res = await t.http.post('/runs').set(AUTH).send(TINY_RUN);
    expect(res.status).toBe(201);
    expect(res.body.runId).toMatch(/^run-[a-z0-9]+-[0-9a-f]{6}$/);
    expect(await storedRun(res.body.runId)).not.toBeNull();

    const again = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-cpu' });
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/run "run-cpu" already exists/);
  });

  it('lists every reason of an invalid config and writes and queues nothing', async () => {
    const before = await jobIds(QueueName.TrainCpu);
    const res = await t.http
      .post('/runs')
      .set(AUTH)
      .send({
        ...TINY_RUN,
        runId: 'bad-config',
        config: { train: { bogus: 1 }, optim: { lr: 5 }, model: { depth: 0 } },
      });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe('invalid run config');
    expect(res.body.reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^train: .*bogus/),
        expect.stringMatching(/^optim\.lr: /),
        expect.stringMatching(/^model\.depth: /),
      ]),
    );

    const crops = await t.http
      .post('/runs')
      .set(AUTH)
      .send({
        ...TINY_RUN,
        runId: 'bad-crops',
        config: { augment: { globalCropSize: 30, localCropSize: 64 } },
      });
    expect(crops.status).toBe(400);
    expect(crops.body.reasons).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^augment\.globalCropSize: must be a multiple of model\.patchSize/),
        expect.stringMatching(/^augment\.localCropSize: must not exceed augment\.globalCropSize/),
      ]),
    );

    expect(await storedRun('bad-config')).toBeNull();
    expect(await storedRun('bad-crops')).toBeNull();
    expect(await jobIds(QueueName.TrainCpu)).toEqual(before);
  });

  it('rejects unknown body fields, unknown presets and a batch larger than the dataset', async () => {
    const extra = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'x1', priority: 3 });
    expect(extra.status).toBe(400);
    expect(extra.body.reasons.join()).toMatch(/priority/);

    const preset = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'x2', preset: 'huge' });
    expect(preset.status).toBe(400);
    expect(preset.body.reasons[0]).toMatch(/^preset: /);

    const batch = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'x3', config: { train: { batchSize: 1024 } } });
    expect(batch.status).toBe(400);
    expect(batch.body.reasons[0]).toMatch(/^train\.batchSize: 1024 exceeds the 640 training images/);
    expect(await storedRun('x3')).toBeNull();
  });

  it('answers 404 naming an unknown dataset, and writes nothing', async () => {
    const res = await t.http.post('/runs').set(AUTH).send({ dataset: 'cifar', runId: 'no-data' });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ field: 'dataset', message: 'dataset "cifar" does not exist' });
    expect(await storedRun('no-data')).toBeNull();
  });

  it('refuses path-like and malformed ids, naming the field', async () => {
    for (const path of ['/runs/..%2Fx', '/runs/a.b', '/runs/ABC', '/runs/a%20b/metrics']) {
      const res = await t.http.get(path).set(AUTH);
      expect(res.status).toBe(400);
      expect(res.body.field).toBe('runId');
      expect(res.body.message).toMatch(/^invalid runId /);
    }
    const body = await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: '../etc' });
    expect(body.status).toBe(400);
    expect(body.body.field).toBe('runId');
    const dataset = await t.http.post('/runs').set(AUTH).send({ dataset: 'Fashion.MNIST' });
    expect(dataset.status).toBe(400);
    expect(dataset.body.field).toBe('dataset');
  });

  it('answers 413 for a body over 256 kB and 400 for malformed JSON', async () => {
    const big = { ...TINY_RUN, runId: 'too-big', config: { note: 'x'.repeat(300 * 1024) } };
    const res = await t.http.post('/runs').set(AUTH).send(big);
    expect(res.status).toBe(413);
    expect(res.body.message).toMatch(/256kb/);
    expect(await storedRun('too-big')).toBeNull();

    const broken = await t.http
      .post('/runs')
      .set(AUTH)
      .set('Content-Type', 'application/json')
      .send('{"dataset":');
    expect(broken.status).toBe(400);
    expect(broken.body.message).toMatch(/not valid JSON/);
  });
});

describe('GET /runs', () => {
  it('reports progress from committed checkpoints and the latest metrics', async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-progress' });
    await commitCheckpoint(t.store, 'run-progress', 50, { 'student.safetensors': new Uint8Array([1, 2, 3]) });
    await t.store.putJson(runRecordKey('run-progress'), {
      ...(await storedRun('run-progress')),
      status: 'running',
      backend: 'wasm',
      latestMetrics: { step: 57, loss: 7.9, imagesPerSecond: 12.5 },
    });

    const res = await t.http.get('/runs/run-progress').set(AUTH);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'running',
      backend: 'wasm',
      committedCheckpoints: [50],
      lastCommittedStep: 50,
      progress: { shard: 1, numShards: 2, step: 57, epoch: 5, totalSteps: 100 },
      latestMetrics: { loss: 7.9 },
    });

    const list = await t.http.get('/runs').set(AUTH);
    expect(list.body.runs.map((run: { runId: string }) => run.runId)).toEqual(
      expect.arrayContaining(['run-cpu', 'run-progress']),
    );

    expect((await t.http.get('/runs/nope').set(AUTH)).status).toBe(404);
  });

  it('concatenates metric lines of every shard, optionally from a step', async () => {
    const line = (step: number) => JSON.stringify(metricsLine(step));
    await t.store.putBytes(
      metricsKey('run-progress', 0),
      new TextEncoder().encode(`${line(0)}\n${line(1)}\n`),
    );
    await t.store.putBytes(metricsKey('run-progress', 1), new TextEncoder().encode(`${line(50)}\n`));
    const all = await t.http.get('/runs/run-progress/metrics').set(AUTH);
    expect(all.body.map((entry: { step: number }) => entry.step)).toEqual([0, 1, 50]);
    expect(all.body[2]).toEqual(metricsLine(50));
    expect(all.headers['x-skipped-lines']).toBe('0');
    const tail = await t.http.get('/runs/run-progress/metrics?fromStep=1').set(AUTH);
    expect(tail.body.map((entry: { step: number }) => entry.step)).toEqual([1, 50]);
    const bad = await t.http.get('/runs/run-progress/metrics?fromStep=-1').set(AUTH);
    expect(bad.status).toBe(400);
    expect(bad.body.reasons[0]).toMatch(/^fromStep: /);
  });

  it('leaves out and counts lines that are not metrics lines, and reads older ones', async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-damaged-metrics' });
    const { dataMs: _dataMs, dataThreads: _dataThreads, replicas: _replicas, ...older } = metricsLine(0);
    const lines = [
      JSON.stringify(older),
      '{"step":1,"loss":',
      JSON.stringify({ step: 2 }),
      JSON.stringify(metricsLine(3)),
    ];
    await t.store.putBytes(
      metricsKey('run-damaged-metrics', 0),
      new TextEncoder().encode(`${lines.join('\n')}\n`),
    );
    const res = await t.http.get('/runs/run-damaged-metrics/metrics').set(AUTH);
    expect(res.status).toBe(200);
    expect(res.body).toEqual([older, metricsLine(3)]);
    expect(res.headers['x-skipped-lines']).toBe('2');
  });
});

describe('cancel and resume', () => {
  it('removes a queued shard, marks the run cancelled, and resumes under a new generation', async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-cancel', device: 'cpu' });
    const cancel = await t.http.post('/runs/run-cancel/cancel').set(AUTH);
    expect(cancel.status).toBe(200);
    expect(cancel.body).toMatchObject({
      status: 'cancelled',
      cancelRequested: true,
      removedJobId: 'run-cancel-g0-shard-0',
    });
    expect(await t.queue(QueueName.TrainCpu).getJob('run-cancel-g0-shard-0')).toBeUndefined();
    expect(await storedRun('run-cancel')).toMatchObject({ status: 'cancelled', cancelRequested: true });

    const again = await t.http.post('/runs/run-cancel/cancel').set(AUTH);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('cancelled');

    const resume = await t.http.post('/runs/run-cancel/resume').set(AUTH);
    expect(resume.status).toBe(202);
    expect(resume.body).toMatchObject({
      status: 'queued',
      generation: 1,
      cancelRequested: false,
      job: { id: 'run-cancel-g1-shard-0' },
    });
    expect(await storedRun('run-cancel')).toMatchObject({
      status: 'queued',
      generation: 1,
      cancelRequested: false,
    });
    const job = await t.queue(QueueName.TrainCpu).getJob('run-cancel-g1-shard-0');
    expect(job?.data).toEqual({ runId: 'run-cancel', shard: 0, fromStep: 0, toStep: 50 });

    const twice = await t.http.post('/runs/run-cancel/resume').set(AUTH);
    expect(twice.status).toBe(409);
  });

  it('resumes a failed run from its newest committed checkpoint', async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-failed', device: 'gpu' });
    await commitCheckpoint(t.store, 'run-failed', 50, { 'student.safetensors': new Uint8Array([9]) });
    await t.store.putJson(runRecordKey('run-failed'), {
      ...(await storedRun('run-failed')),
      status: 'failed',
      generation: 2,
      error: 'out of memory',
    });
    const resume = await t.http.post('/runs/run-failed/resume').set(AUTH);
    expect(resume.status).toBe(202);
    expect(resume.body).toMatchObject({
      generation: 3,
      error: null,
      lastCommittedStep: 50,
      job: { id: 'run-failed-g3-shard-1', queue: 'train-gpu' },
    });
    const job = await t.queue(QueueName.TrainGpu).getJob('run-failed-g3-shard-1');
    expect(job?.data).toEqual({ runId: 'run-failed', shard: 1, fromStep: 50, toStep: 100 });

    const cancelCompleted = await t.http.post('/runs/run-progress/resume').set(AUTH);
    expect(cancelCompleted.status).toBe(409);
  });

  it('lets an active shard finish: cancel is only requested, resume waits', async () => {
    await t.http
      .post('/runs')
      .set(AUTH)
      .send({ ...TINY_RUN, runId: 'run-active', device: 'cpu' });
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let started!: (job: Job) => void;
    const active = new Promise<Job>((resolve) => (started = resolve));
    const worker = new Worker(
      QueueName.TrainCpu,
      async (job) => {
        if (job.id !== 'run-active-g0-shard-0') return;
        started(job);
        await released;
      },
      { connection: redisConnection, prefix: t.prefix },
    );
    try {
      await active;
      const cancel = await t.http.post('/runs/run-active/cancel').set(AUTH);
      expect(cancel.status).toBe(200);
      expect(cancel.body).toMatchObject({
        status: 'queued',
        cancelRequested: true,
        stopsAfterCurrentShard: true,
        removedJobId: null,
      });
      const resume = await t.http.post('/runs/run-active/resume').set(AUTH);
      expect(resume.status).toBe(409);
      expect(resume.body.message).toMatch(/cancellation is still in progress/);
    } finally {
      release();
      await worker.close();
    }
  });

  it('refuses to cancel a completed run', async () => {
    await t.store.putJson(runRecordKey('run-progress'), {
      ...(await storedRun('run-progress')),
      status: 'completed',
    });
    const res = await t.http.post('/runs/run-progress/cancel').set(AUTH);
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/is completed/);
  });
});
