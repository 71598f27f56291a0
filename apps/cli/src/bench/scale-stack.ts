import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import { planRun, type RunConfig } from '@dinoq/config';
import { importFashionMnist } from '@dinoq/data';
import {
  JobProducer,
  QueueName,
  RunRepository,
  allQueues,
  continuationJob,
  newRunRecord,
  redisConnectionFromEnv,
  type RunRecord,
} from '@dinoq/jobs';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  ObjectStore,
  checkpointPrefix,
  createS3Client,
  runPrefix,
  startEmbeddedS3,
} from '@dinoq/storage';
import type { CheckpointSize } from './scale-figures';

/*
 * The pieces of a deployment that `bench:scale` trains on: an embedded S3 server in this process,
 * the Redis of REDIS_URL under a BullMQ prefix of its own, and built worker processes
 * (apps/worker/dist/main.js) started with the environment a deployment would give them.
 */

const repoRoot = path.resolve(__dirname, '../../../..');
export const WORKER_MAIN = path.join(repoRoot, 'apps/worker/dist/main.js');
const BUCKET = 'dinoq-bench';
export const DATASET = 'fmnist';

/** One JSON log line of a worker (pino: `msg`, `time` in ms, and the line's fields). */
export type LogLine = Record<string, unknown> & { msg?: string; time?: number };

/** `node apps/worker/dist/main.js` with its JSON log lines collected. */
export class WorkerProcess {
  readonly lines: LogLine[] = [];
  private readonly raw: string[] = [];
  private readonly child: ChildProcess;
  private exitCode: string | null = null;
  private readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.child = spawn(process.execPath, [WORKER_MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    const onData = (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const text of parts) {
        this.raw.push(text);
        if (this.raw.length > 200) this.raw.shift();
        if (!text.startsWith('{')) continue;
        try {
          this.lines.push(JSON.parse(text) as LogLine);
        } catch {
          // Not a log line.
        }
      }
    };
    this.child.stdout?.on('data', onData);
    this.child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitCode = signal ?? String(code);
        resolve();
      }),
    );
  }

  /** Null while the process runs, else its exit code or signal. */
  get exit(): string | null {
    return this.exitCode;
  }

  /** Resolves with the "worker ready" line; rejects when the process exits first or `timeoutMs` passes. */
  async ready(timeoutMs = 120_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => l.msg === 'worker ready');
      if (line) return line;
      if (this.exitCode !== null)
        throw new Error(`worker ${this.name} exited (${this.exitCode}):\n${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`worker ${this.name} not ready in ${timeoutMs} ms:\n${this.tail()}`);
      await sleep(100);
    }
  }

  /** SIGTERM, SIGKILL after a grace period, and waits for the exit. */
  async stop(): Promise<void> {
    if (this.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(timer);
  }

  tail(lines = 30): string {
    return this.raw.slice(-lines).join('\n');
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Worker settings a setup varies; the rest is the stack's. */
export interface WorkerEnv {
  trainReplicas: number;
  blasThreads: number;
  dataThreads: string;
  backend: string;
}

export interface ScaleStack {
  store: ObjectStore;
  runs: RunRepository;
  producer: JobProducer;
  /** Training images of the imported dataset. */
  datasetSize: number;
  startWorker(name: string, env: WorkerEnv): WorkerProcess;
  close(): Promise<void>;
}

/** Starts S3 and the queues and imports `trainLimit` Fashion-MNIST images into the bucket. */
export async function startScaleStack(trainLimit: number): Promise<ScaleStack> {
  if (!existsSync(WORKER_MAIN)) {
    throw new Error(`${WORKER_MAIN} is missing: build the worker first (npm run build)`);
  }
  const directory = await mkdtemp(path.join(os.tmpdir(), 'dinoq-bench-scale-s3-'));
  const s3 = await startEmbeddedS3({ directory, bucket: BUCKET });
  const client = createS3Client({
    endpoint: s3.endpoint,
    region: EMBEDDED_S3_REGION,
    ...EMBEDDED_S3_CREDENTIALS,
  });
  const store = new ObjectStore({
    client,
    bucket: BUCKET,
    listing: s3.continuationTokens ? 'continuation-token' : 'marker',
  });
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const connection = redisConnectionFromEnv({ REDIS_URL: redisUrl });
  const prefix = `dinoq-bench-scale-${process.pid}`;
  const producer = new JobProducer(connection, prefix);
  const manifest = await importFashionMnist({ store, name: DATASET, limit: trainLimit });
  const workers: WorkerProcess[] = [];
  return {
    store,
    runs: new RunRepository(store),
    producer,
    datasetSize: manifest.splits.train.count,
    startWorker(name, env) {
      const worker = new WorkerProcess(name, {
        ...process.env,
        REDIS_URL: redisUrl,
        S3_ENDPOINT: s3.endpoint,
        S3_BUCKET: BUCKET,
        S3_REGION: EMBEDDED_S3_REGION,
        S3_ACCESS_KEY_ID: EMBEDDED_S3_CREDENTIALS.accessKeyId,
        S3_SECRET_ACCESS_KEY: EMBEDDED_S3_CREDENTIALS.secretAccessKey,
        DINOQ_QUEUE_PREFIX: prefix,
        DINOQ_WORKER_QUEUES: QueueName.TrainCpu,
        DINOQ_BACKEND: env.backend,
        DINOQ_DEVICE_CLASS: 'cpu',
        DINOQ_TRAIN_REPLICAS: String(env.trainReplicas),
        DINOQ_DATA_THREADS: env.dataThreads,
        DINOQ_BLAS_THREADS: String(env.blasThreads),
        LOG_LEVEL: 'info',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      });
      workers.push(worker);
      return worker;
    },
    async close() {
      await Promise.all(workers.map((worker) => worker.stop()));
      for (const name of allQueues) {
        const queue = new Queue(name, { connection, prefix });
        await queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close();
      }
      await producer.close();
      client.destroy();
      await s3.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Writes the run's record and queues its first shard or round, as POST /runs does. */
export async function createRun(stack: ScaleStack, runId: string, config: RunConfig): Promise<RunRecord> {
  const record = newRunRecord({
    runId,
    datasetName: DATASET,
    datasetSize: stack.datasetSize,
    config,
    device: 'cpu',
    ...planRun(stack.datasetSize, config.train),
    // A benchmark run that fails should fail, not retry behind the figures' back.
    retryBudget: 0,
    createdAt: new Date().toISOString(),
  });
  if (!(await stack.runs.create(record))) throw new Error(`run ${runId} exists already`);
  const first = continuationJob(record, []);
  if (!first) throw new Error(`run ${runId} has no steps to train`);
  await stack.producer.addContinuation(first);
  return record;
}

/** Polls run.json until the run has finished; throws when it failed or a worker died. */
export async function waitForRun(
  stack: ScaleStack,
  runId: string,
  workers: readonly WorkerProcess[],
  timeoutMs: number,
): Promise<RunRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await stack.runs.get(runId);
    if (run.status === 'completed') return run;
    if (run.status === 'failed' || run.status === 'cancelled') {
      throw new Error(`run ${runId} ${run.status}: ${run.error}\n${workers.map((w) => w.tail()).join('\n')}`);
    }
    const dead = workers.find((w) => w.exit !== null);
    if (dead)
      throw new Error(`worker ${dead.name} exited (${dead.exit}) during run ${runId}:\n${dead.tail()}`);
    if (Date.now() > deadline)
      throw new Error(`run ${runId} did not finish within ${timeoutMs / 60_000} min`);
    await sleep(250);
  }
}

/** Object sizes of every committed checkpoint of a run, by step. */
export async function checkpointSizes(
  store: ObjectStore,
  runId: string,
  steps: readonly number[],
): Promise<Map<number, CheckpointSize>> {
  const out = new Map<number, CheckpointSize>();
  for (const step of steps) {
    const size: CheckpointSize = { totalBytes: 0, studentBytes: 0, outerBytes: 0 };
    for await (const object of store.listObjects(checkpointPrefix(runId, step))) {
      size.totalBytes += object.size;
      if (object.key.endsWith('/student.safetensors')) size.studentBytes = object.size;
      if (object.key.endsWith('/outer.safetensors')) size.outerBytes = object.size;
    }
    out.set(step, size);
  }
  return out;
}

/** Drops a measured run's objects so long benchmarks do not fill the disk with checkpoints. */
export async function dropRun(store: ObjectStore, runId: string): Promise<void> {
  await store.deletePrefix(runPrefix(runId));
}
