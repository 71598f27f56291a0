import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker, QueueEvents } from 'bullmq';
import { resolveRunConfig } from '@dinoq/config';
import { DinoTrainer, selectBackend } from '@dinoq/dino';
import { augmentBatch, batchIndices } from '@dinoq/data';
import { JobProducer, QueueName, redisConnectionFromEnv } from '@dinoq/jobs';
import {
  ObjectStore,
  commitCheckpoint,
  createS3Client,
  loadCheckpoint,
  startEmbeddedS3,
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
} from '@dinoq/storage';
import { argValue, benchSplit } from './bench-data';

/**
 * npm run bench:queue [-- --jobs 2000 --samples 300 --steps-per-shard 50]
 *
 * 1. Round-trip latency of an empty job through real Redis (add → completed seen by QueueEvents).
 * 2. Throughput of empty jobs (pre-filled queue, one worker).
 * 3. The overhead of a training shard for fmnist-tiny: checkpoint encode + commit to an
 *    S3-compatible server + load + restore, as a share of the shard's compute time.
 */
const prefix = `dinoq-bench-${process.pid}`;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function latencyAndThroughput(samples: number, jobs: number): Promise<void> {
  const connection = redisConnectionFromEnv();
  const producer = new JobProducer(connection, prefix);
  const queue = producer.queue(QueueName.Import);
  await queue.obliterate({ force: true });
  const events = new QueueEvents(QueueName.Import, { connection, prefix });
  await events.waitUntilReady();
  const worker = new Worker(QueueName.Import, async () => ({ ok: true }), {
    connection,
    prefix,
    concurrency: 1,
  });
  await worker.waitUntilReady();
  const data = { datasetName: 'bench', source: { kind: 'fashion-mnist' as const } };
  const lat: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    const job = await producer.add(QueueName.Import, 'import', data, { removeOnComplete: true, attempts: 1 });
    await job.waitUntilFinished(events);
    lat.push(performance.now() - t0);
  }
  lat.sort((a, b) => a - b);
  console.log(
    `empty job round trip (add → completed, ${samples} sequential): p50 ${pct(lat, 50).toFixed(2)} ms, p95 ${pct(lat, 95).toFixed(2)} ms, p99 ${pct(lat, 99).toFixed(2)} ms`,
  );
  await worker.pause();
  await queue.addBulk(
    Array.from({ length: jobs }, () => ({ name: 'import', data, opts: { removeOnComplete: true } })),
  );
  let done = 0;
  const finished = new Promise<void>((resolve) => {
    worker.on('completed', () => {
      if (++done === jobs) resolve();
    });
  });
  const t0 = performance.now();
  worker.resume();
  await finished;
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `empty job throughput (${jobs} pre-filled, 1 worker, concurrency 1): ${(jobs / seconds).toFixed(0)} jobs/s`,
  );
  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await producer.close();
}

async function shardOverhead(stepsPerShard: number): Promise<void> {
  const backend = await selectBackend();
  const split = await benchSplit('train', 512);
  const config = resolveRunConfig('fmnist-tiny', { train: { stepsPerShard } });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-bench-s3-'));
  const s3 = await startEmbeddedS3({ directory: dir, bucket: 'dinoq' });
  const client = createS3Client({
    endpoint: s3.endpoint,
    region: EMBEDDED_S3_REGION,
    ...EMBEDDED_S3_CREDENTIALS,
  });
  const store = new ObjectStore({ client, bucket: 'dinoq' });
  try {
    const trainer = DinoTrainer.create(config, split.count);
    const stepMs: number[] = [];
    for (let s = 0; s < 3; s++) {
      const batch = await augmentBatch(split, batchIndices(split.count, 64, 0, s), config.augment, {
        seed: 0,
        epoch: 0,
      });
      stepMs.push(trainer.trainStep(batch).stepMs);
    }
    const steady = stepMs.slice(1).reduce((a, b) => a + b, 0) / (stepMs.length - 1);
    let t0 = performance.now();
    const files = trainer.checkpointFiles();
    const encodeMs = performance.now() - t0;
    t0 = performance.now();
    await commitCheckpoint(store, 'bench', trainer.step, files);
    const commitMs = performance.now() - t0;
    t0 = performance.now();
    const loaded = await loadCheckpoint(store, 'bench', trainer.step);
    const loadMs = performance.now() - t0;
    t0 = performance.now();
    const restored = DinoTrainer.restore(config, split.count, loaded.files);
    const restoreMs = performance.now() - t0;
    restored.dispose();
    trainer.dispose();
    const bytes = Object.values(files).reduce((a, f) => a + f.length, 0);
    const overhead = encodeMs + commitMs + loadMs + restoreMs;
    const compute = steady * stepsPerShard;
    console.log(
      `shard overhead, fmnist-tiny on ${backend.name}: checkpoint ${(bytes / 2 ** 20).toFixed(1)} MiB; encode ${encodeMs.toFixed(0)} ms,` +
        ` commit ${commitMs.toFixed(0)} ms, load ${loadMs.toFixed(0)} ms, restore ${restoreMs.toFixed(0)} ms = ${overhead.toFixed(0)} ms` +
        ` vs ${stepsPerShard} steps × ${steady.toFixed(0)} ms = ${(compute / 1000).toFixed(1)} s compute → ${((100 * overhead) / compute).toFixed(2)}% overhead`,
    );
  } finally {
    await s3.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await latencyAndThroughput(Number(argValue('samples', '300')), Number(argValue('jobs', '2000')));
  await shardOverhead(Number(argValue('steps-per-shard', '50')));
}

main()
  .then(() => process.exit(0))
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
