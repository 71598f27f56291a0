import sharp from 'sharp';
import { QueueName } from '@dinoq/jobs';
import { attentionFileKey, backboneExportKey, commitCheckpoint, evalKey } from '@dinoq/storage';
import { AUTH, TINY_RUN, seedDataset, startTestApi, type TestApi } from './api-fixture';

let t: TestApi;

// Real images: the API decodes uploads before storing them.
let PNG: Buffer;
let JPEG: Buffer;

beforeAll(async () => {
  const gray = sharp({ create: { width: 12, height: 10, channels: 3, background: '#7a7a7a' } });
  PNG = await gray.clone().png().toBuffer();
  JPEG = await gray.clone().jpeg().toBuffer();
  t = await startTestApi();
  await seedDataset(t.store, 'fmnist');
  await t.http
    .post('/runs')
    .set(AUTH)
    .send({ ...TINY_RUN, runId: 'run-a', device: 'cpu' })
    .expect(201);
  await t.http
    .post('/runs')
    .set(AUTH)
    .send({ ...TINY_RUN, runId: 'run-g', device: 'gpu' })
    .expect(201);
});
afterAll(() => t.close());

/** An evaluation report as a worker writes it. */
const REPORT = {
  evalId: 'eval-done',
  runId: 'run-a',
  step: 50,
  kinds: ['knn'],
  network: 'teacher',
  knn: [{ k: 20, top1: 71, top5: 96.5 }],
  knnSettings: { ks: [20], temperature: 0.07, trainImages: 64, testImages: 16 },
  linear: null,
  baselines: {
    knn: { randomInit: [{ k: 20, top1: 49.25, top5: 90 }], rawPixels: [{ k: 20, top1: 81.1, top5: 97 }] },
  },
  scheduled: false,
  durationMs: 900,
  backend: 'wasm',
  createdAt: '2026-01-01T00:00:00.000Z',
};

/** An attention export's index.json as a worker writes it (one image, two heads). */
function attentionIndex(exportId: string) {
  return {
    threshold: 0.6,
    patchSize: 4,
    heads: 2,
    imageSize: 32,
    scale: 4,
    images: [
      {
        name: 'input-0.png',
        width: 32,
        height: 32,
        files: {
          input: 'img-0000-input.png',
          heads: ['img-0000-head-0.png', 'img-0000-head-1.png'],
          mean: 'img-0000-mean.png',
          headMasks: ['img-0000-mask-0.png', 'img-0000-mask-1.png'],
          meanMask: 'img-0000-mean-mask.png',
          headOverlays: ['img-0000-overlay-0.png', 'img-0000-overlay-1.png'],
          overlay: 'img-0000-overlay.png',
        },
        maskArea: { heads: [0.4, 0.5], mean: 0.45 },
      },
    ],
    runId: 'run-a',
    exportId,
    step: 50,
    network: 'teacher',
    backend: 'wasm',
    createdAt: '2026-01-01T00:00:00.000Z',
  };
}

describe('datasets', () => {
  it('lists datasets with classes and counts per split', async () => {
    await seedDataset(t.store, 'small', 64, 16);
    const res = await t.http.get('/datasets').set(AUTH).expect(200);
    expect(res.body.map((d: { name: string }) => d.name)).toEqual(['fmnist', 'small']);
    expect(res.body[1]).toMatchObject({
      name: 'small',
      splits: { train: { count: 64 }, test: { count: 16 } },
    });
    expect(res.body[1].classes).toHaveLength(10);
    const one = await t.http.get('/datasets/small').set(AUTH).expect(200);
    expect(one.body.imageSize).toEqual({ width: 28, height: 28, channels: 1 });
    const missing = await t.http.get('/datasets/nope').set(AUTH);
    expect(missing.status).toBe(404);
    expect(missing.body.field).toBe('name');
  });

  it('queues one import job per dataset name', async () => {
    const body = { name: 'fresh', source: { kind: 'fashion-mnist', limit: 100 } };
    const first = await t.http.post('/datasets/import').set(AUTH).send(body);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ jobId: 'import-fresh', queue: 'import', state: 'waiting' });
    await t.http.post('/datasets/import').set(AUTH).send(body).expect(202);
    const waiting = await t.queue(QueueName.Import).getWaiting();
    expect(waiting.map((job) => job.id)).toEqual(['import-fresh']);
    expect(waiting[0].data).toEqual({ datasetName: 'fresh', source: { kind: 'fashion-mnist', limit: 100 } });

    const exists = await t.http
      .post('/datasets/import')
      .set(AUTH)
      .send({ name: 'small', source: { kind: 'fashion-mnist' } });
    expect(exists.status).toBe(409);
    const badName = await t.http
      .post('/datasets/import')
      .set(AUTH)
      .send({ name: 'Bad.Name', source: { kind: 'fashion-mnist' } });
    expect(badName.status).toBe(400);
    expect(badName.body.field).toBe('name');
    const badPrefix = await t.http
      .post('/datasets/import')
      .set(AUTH)
      .send({ name: 'folder', source: { kind: 'image-folder', prefix: 'uploads/../runs' } });
    expect(badPrefix.status).toBe(400);
    expect(badPrefix.body.reasons[0]).toMatch(/^source\.prefix: /);

    const tars = { name: 'tars', source: { kind: 'webdataset', prefix: 'uploads/wds' } };
    await t.http.post('/datasets/import').set(AUTH).send(tars).expect(202);
    const queued = await t.queue(QueueName.Import).getJob('import-tars');
    expect(queued?.data).toEqual({ datasetName: 'tars', source: tars.source });
    const badTars = await t.http
      .post('/datasets/import')
      .set(AUTH)
      .send({ name: 'tars2', source: { kind: 'webdataset', prefix: 'uploads//wds' } });
    expect(badTars.status).toBe(400);
    expect(badTars.body.reasons[0]).toMatch(/^source\.prefix: must not contain empty/);
  });
});

describe('evaluations', () => {
  it('needs a committed checkpoint', async () => {
    const res = await t.http
      .post('/runs/run-a/evaluations')
      .set(AUTH)
      .send({ kinds: ['knn'] });
    expect(res.status).toBe(409);
    expect(res.body.message).toMatch(/no committed checkpoint/);
  });

  it('queues evaluations on the run device class and lists them with stored reports', async () => {
    await commitCheckpoint(t.store, 'run-a', 50, { 'teacher.safetensors': new Uint8Array([1, 2, 3, 4]) });
    await commitCheckpoint(t.store, 'run-g', 50, { 'teacher.safetensors': new Uint8Array([5]) });

    const latest = await t.http
      .post('/runs/run-a/evaluations')
      .set(AUTH)
      .send({ kinds: ['knn'], knn: { ks: [5] } });
    expect(latest.status).toBe(202);
    expect(latest.body).toMatchObject({ queue: 'evaluate-cpu', status: 'waiting', step: null });
    const job = await t.queue(QueueName.EvaluateCpu).getJob(latest.body.jobId);
    expect(job?.data).toMatchObject({
      runId: 'run-a',
      evalId: latest.body.evalId,
      step: null,
      kinds: ['knn'],
      knn: { ks: [5] },
    });

    const pinned = await t.http
      .post('/runs/run-g/evaluations')
      .set(AUTH)
      .send({ kinds: ['linear', 'knn'], step: 50 });
    expect(pinned.status).toBe(202);
    expect(pinned.body).toMatchObject({ queue: 'evaluate-gpu', step: 50 });
    expect(await t.queue(QueueName.EvaluateGpu).getJob(pinned.body.jobId)).toBeDefined();

    const wrongStep = await t.http
      .post('/runs/run-a/evaluations')
      .set(AUTH)
      .send({ kinds: ['knn'], step: 7 });
    expect(wrongStep.status).toBe(400);
    expect(wrongStep.body).toMatchObject({ field: 'step' });
    expect(wrongStep.body.message).toMatch(/committed: 50/);
    const noKinds = await t.http.post('/runs/run-a/evaluations').set(AUTH).send({ kinds: [] });
    expect(noKinds.status).toBe(400);
    expect(noKinds.body.reasons[0]).toMatch(/^kinds: /);

    await t.store.putJson(evalKey('run-a', 'eval-done'), REPORT);
    // A report damaged outside dinoq shows as unreadable in the listing and hides nothing else.
    await t.store.putJson(evalKey('run-g', 'eval-damaged'), {
      ...REPORT,
      runId: 'run-g',
      knn: { top1: { 20: 0.71 } },
    });
    const list = await t.http.get('/runs/run-a/evaluations').set(AUTH).expect(200);
    const byId = Object.fromEntries(list.body.map((e: { evalId: string }) => [e.evalId, e]));
    expect(byId['eval-done']).toEqual({
      evalId: 'eval-done',
      status: 'completed',
      step: 50,
      kinds: ['knn'],
      jobId: null,
      error: null,
      report: REPORT,
      summary: ['k-NN k=20 top-1 71.0 % (random 49.3 %, pixels 81.1 %)'],
    });
    const gpuList = await t.http.get('/runs/run-g/evaluations').set(AUTH).expect(200);
    const damagedView = gpuList.body.find((e: { evalId: string }) => e.evalId === 'eval-damaged');
    expect(damagedView).toMatchObject({ status: 'unreadable', report: null, step: null, summary: [] });
    expect(damagedView.error).toMatch(/runs\/run-g\/evals\/eval-damaged\.json cannot be read: knn: /);
    expect(byId[latest.body.evalId]).toMatchObject({ status: 'waiting', kinds: ['knn'] });
    expect(byId[pinned.body.evalId]).toBeUndefined();

    const one = await t.http.get(`/runs/run-a/evaluations/${latest.body.evalId}`).set(AUTH).expect(200);
    expect(one.body.status).toBe('waiting');
    const done = await t.http.get('/runs/run-a/evaluations/eval-done').set(AUTH).expect(200);
    expect(done.body.report.knn[0]).toEqual({ k: 20, top1: 71, top5: 96.5 });
    const damaged = await t.http.get('/runs/run-g/evaluations/eval-damaged').set(AUTH);
    expect(damaged.status).toBe(422);
    expect(damaged.body.key).toBe('runs/run-g/evals/eval-damaged.json');
    const missing = await t.http.get('/runs/run-a/evaluations/eval-nope').set(AUTH);
    expect(missing.status).toBe(404);
    expect(missing.body.field).toBe('evalId');
    const badId = await t.http.get('/runs/run-a/evaluations/EVAL').set(AUTH);
    expect(badId.status).toBe(400);
    expect(badId.body.field).toBe('evalId');
  });
});

describe('attention exports', () => {
  it('stores uploads, then queues the export', async () => {
    const res = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({
        images: { upload: [PNG.toString('base64'), `data:image/jpeg;base64,${JPEG.toString('base64')}`] },
        threshold: 0.5,
      });
    expect(res.status).toBe(202);
    const { exportId, jobId } = res.body;
    const keys = [
      attentionFileKey('run-a', exportId, 'input-0.png'),
      attentionFileKey('run-a', exportId, 'input-1.jpg'),
    ];
    expect(Buffer.from(await t.store.getBytes(keys[0]))).toEqual(PNG);
    expect(Buffer.from(await t.store.getBytes(keys[1]))).toEqual(JPEG);
    const job = await t.queue(QueueName.Attention).getJob(jobId);
    expect(job?.data).toEqual({
      runId: 'run-a',
      exportId,
      step: null,
      images: { uploadKeys: keys },
      threshold: 0.5,
    });

    const status = await t.http.get(`/runs/run-a/attention/${exportId}`).set(AUTH).expect(200);
    expect(status.body).toMatchObject({ status: 'waiting', index: null });
    const indexKey = attentionFileKey('run-a', exportId, 'index.json');
    await t.store.putJson(indexKey, { images: 2, heads: 4 });
    const damaged = await t.http.get(`/runs/run-a/attention/${exportId}`).set(AUTH);
    expect(damaged.status).toBe(422);
    expect(damaged.body).toMatchObject({ key: indexKey, message: expect.stringMatching(/images: /) });
    const index = attentionIndex(exportId);
    await t.store.putJson(indexKey, index);
    const done = await t.http.get(`/runs/run-a/attention/${exportId}`).set(AUTH).expect(200);
    expect(done.body).toEqual({ runId: 'run-a', exportId, status: 'completed', error: null, index });
  });

  it('rejects bytes that are not PNG or JPEG, and oversized images, before storing anything', async () => {
    const before = await t.queue(QueueName.Attention).getWaitingCount();
    const storedBefore = (await t.store.list('runs/run-a/attention/')).length;
    const text = Buffer.from('GIF89a not really').toString('base64');
    const res = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { upload: [PNG.toString('base64'), text] } });
    expect(res.status).toBe(400);
    expect(res.body.field).toBe('images.upload.1');
    expect(res.body.message).toMatch(/not a PNG or JPEG/);

    const truncated = PNG.subarray(0, PNG.length - 16).toString('base64');
    const corrupt = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { upload: [PNG.toString('base64'), truncated] } });
    expect(corrupt.status).toBe(400);
    expect(corrupt.body.field).toBe('images.upload.1');
    expect(corrupt.body.message).toMatch(/does not decode as png/);

    const huge = Buffer.concat([PNG, Buffer.alloc(1024 * 1024)]).toString('base64');
    const big = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { upload: [huge] } });
    expect(big.status).toBe(400);
    expect(big.body.message).toMatch(/exceeds 1048576 bytes/);

    const notBase64 = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { upload: ['%%%%'] } });
    expect(notBase64.status).toBe(400);
    expect(await t.queue(QueueName.Attention).getWaitingCount()).toBe(before);
    expect(await t.store.list('runs/run-a/attention/')).toHaveLength(storedBefore);
  });

  it('answers 413 above 20 MB on the upload route', async () => {
    const chunk = PNG.toString('base64') + 'A'.repeat(1_400_000);
    const res = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { upload: Array(16).fill(chunk) } });
    expect(res.status).toBe(413);
    expect(res.body.message).toMatch(/20mb/);
  });

  it('checks split and indices against the dataset manifest', async () => {
    const ok = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ step: 50, images: { split: 'test', indices: [0, 99] } });
    expect(ok.status).toBe(202);
    const job = await t.queue(QueueName.Attention).getJob(ok.body.jobId);
    expect(job?.data).toMatchObject({
      step: 50,
      images: { split: 'test', indices: [0, 99] },
      threshold: 0.6,
    });

    const outside = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { split: 'test', indices: [100] } });
    expect(outside.status).toBe(400);
    expect(outside.body.field).toBe('images.indices');
    const noSplit = await t.http
      .post('/runs/run-a/attention')
      .set(AUTH)
      .send({ images: { split: 'val', indices: [0] } });
    expect(noSplit.status).toBe(400);
    expect(noSplit.body.field).toBe('images.split');
    const missing = await t.http.get('/runs/run-a/attention/attn-nope').set(AUTH);
    expect(missing.status).toBe(404);
  });
});

describe('schedules', () => {
  it('upserts one scheduler per id and deletes it', async () => {
    const body = { scheduleId: 'nightly', cron: '0 3 * * *', tz: 'Europe/Paris', kinds: ['knn'] };
    const first = await t.http.post('/schedules').set(AUTH).send(body);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      scheduleId: 'nightly',
      queue: 'evaluate-cpu',
      cron: '0 3 * * *',
      tz: 'Europe/Paris',
      runId: null,
    });
    expect(Date.parse(first.body.nextRunAt)).toBeGreaterThan(Date.now());
    const second = await t.http
      .post('/schedules')
      .set(AUTH)
      .send({ ...body, kinds: ['knn', 'linear'] });
    expect(second.status).toBe(200);
    expect(second.body.kinds).toEqual(['knn', 'linear']);
    expect(await t.queue(QueueName.EvaluateCpu).getJobSchedulersCount()).toBe(1);

    await t.http.delete('/schedules/nightly').set(AUTH).expect(204);
    expect(await t.queue(QueueName.EvaluateCpu).getJobSchedulersCount()).toBe(0);
    expect((await t.http.get('/schedules').set(AUTH)).body).toEqual([]);
    expect((await t.http.delete('/schedules/nightly').set(AUTH)).status).toBe(404);
  });

  it('derives a stable id when none is given, and follows the run to the GPU queue', async () => {
    const body = { runId: 'run-g', every: 600, kinds: ['linear'] };
    const first = await t.http.post('/schedules').set(AUTH).send(body).expect(201);
    const second = await t.http.post('/schedules').set(AUTH).send(body).expect(200);
    expect(second.body.scheduleId).toBe(first.body.scheduleId);
    expect(first.body).toMatchObject({ queue: 'evaluate-gpu', runId: 'run-g', every: 600, cron: null });
    const listed = await t.http.get('/schedules').set(AUTH).expect(200);
    expect(listed.body).toHaveLength(1);
    const template = (await t.queue(QueueName.EvaluateGpu).getJobScheduler(first.body.scheduleId))?.template;
    expect(template?.data).toEqual({ scheduleId: first.body.scheduleId, runId: 'run-g', kinds: ['linear'] });
    await t.http.delete(`/schedules/${first.body.scheduleId}`).set(AUTH).expect(204);
  });

  it('rejects bad patterns, periods, time zones and unknown runs', async () => {
    const cases: [object, RegExp][] = [
      [{ cron: '61 * * * *', kinds: ['knn'] }, /^cron: invalid cron pattern/],
      [{ cron: 'every day', kinds: ['knn'] }, /^cron: invalid cron pattern/],
      [{ every: 5, kinds: ['knn'] }, /^every: /],
      [{ every: 60, cron: '* * * * *', kinds: ['knn'] }, /^every: give exactly one/],
      [{ cron: '0 3 * * *', tz: 'Mars/Olympus', kinds: ['knn'] }, /^tz: unknown time zone/],
      [{ every: 60, kinds: ['svm'] }, /^kinds\.0: /],
    ];
    for (const [body, reason] of cases) {
      const res = await t.http.post('/schedules').set(AUTH).send(body);
      expect(res.status).toBe(400);
      expect(res.body.reasons).toEqual(expect.arrayContaining([expect.stringMatching(reason)]));
    }
    const unknownRun = await t.http
      .post('/schedules')
      .set(AUTH)
      .send({ runId: 'ghost', every: 60, kinds: ['knn'] });
    expect(unknownRun.status).toBe(404);
    const badId = await t.http
      .post('/schedules')
      .set(AUTH)
      .send({ scheduleId: 'a:b', every: 60, kinds: ['knn'] });
    expect(badId.status).toBe(400);
    expect(badId.body.field).toBe('scheduleId');
    expect(await t.queue(QueueName.EvaluateCpu).getJobSchedulersCount()).toBe(0);
  });
});

describe('artifacts', () => {
  it('lists checkpoints, backbone, reports and attention files with working presigned URLs', async () => {
    await commitCheckpoint(t.store, 'run-a', 100, {
      'student.safetensors': new Uint8Array([7, 7]),
      'state.json': new TextEncoder().encode('{}'),
    });
    await t.store.putBytes(backboneExportKey('run-a'), new Uint8Array(10));
    const res = await t.http.get('/runs/run-a/artifacts').set(AUTH).expect(200);
    expect(res.body.checkpoints.map((c: { step: number }) => c.step)).toEqual([50, 100]);
    const files = res.body.checkpoints[1].files;
    expect(files.map((f: { name: string }) => f.name).sort()).toEqual(['state.json', 'student.safetensors']);
    const student = files.find((f: { name: string }) => f.name === 'student.safetensors');
    expect(student).toMatchObject({ key: 'checkpoints/000000100/student.safetensors', size: 2 });
    const fetched = await fetch(student.url);
    expect(Buffer.from(await fetched.arrayBuffer())).toEqual(Buffer.from([7, 7]));
    expect(res.body.backbone).toMatchObject({ key: 'export/backbone.safetensors', size: 10 });
    expect(res.body.evaluations.map((e: { key: string }) => e.key)).toEqual(['evals/eval-done.json']);
    expect(res.body.attention.length).toBeGreaterThanOrEqual(1);
    expect(res.body.attention[0].files.map((f: { name: string }) => f.name)).toEqual(
      expect.arrayContaining(['input-0.png', 'index.json']),
    );
  });

  it('presigns one key inside the run and refuses keys that leave it', async () => {
    const ok = await t.http
      .get('/runs/run-a/artifacts/url')
      .query({ key: 'checkpoints/000000050/COMMITTED' })
      .set(AUTH)
      .expect(200);
    const body = await (await fetch(ok.body.url)).json();
    expect(body).toMatchObject({ runId: 'run-a', step: 50 });
    for (const key of [
      '../run-g/run.json',
      'checkpoints/../../x',
      '/runs/run-a/run.json',
      'a//b',
      'a\\b',
      '',
    ]) {
      const res = await t.http.get('/runs/run-a/artifacts/url').query({ key }).set(AUTH);
      expect(res.status).toBe(400);
      expect(res.body.field).toBe('key');
    }
    const missing = await t.http
      .get('/runs/run-a/artifacts/url')
      .query({ key: 'checkpoints/000000999/COMMITTED' })
      .set(AUTH);
    expect(missing.status).toBe(404);
  });
});
