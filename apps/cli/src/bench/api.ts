import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import { planRun, resolveRunConfig } from '@dinoq/config';
import { mapLimit } from '@dinoq/data';
import {
  DEFAULT_RUN_RETRY_BUDGET,
  RunIndex,
  newRunRecord,
  redisConnectionFromEnv,
  type RunRecord,
  type RunStatus,
} from '@dinoq/jobs';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  ObjectStore,
  createS3Client,
  runRecordKey,
  startEmbeddedS3,
} from '@dinoq/storage';
import { argValue } from './bench-data';

/**
 * npm run bench:api [-- --runs 10000 --requests 2000 --concurrency 20 --seed-concurrency 16]
 *
 * Seeds `--runs` run records into an embedded S3 server and the run index (RunIndex.rebuild),
 * starts the API as its own process (as deployed) against the Redis that answers, then drives a
 * first page, a status-filtered page, a page deep behind a cursor and GET /health with
 * `--concurrency` requests in flight over keep-alive connections. Last, it drops the index and
 * times the API's rebuild from S3 on the next GET /runs (what follows a wipe of Redis).
 *
 * The load comes from node:http with a keep-alive agent rather than autocannon: autocannon's
 * histogram keeps whole milliseconds and reports no p95, and a plain loop gives exact per-request
 * latencies (issue to last byte of the body) for the percentiles printed here.
 */

const repoRoot = path.resolve(__dirname, '../../../..');
const BUCKET = 'dinoq-bench';
const PAGE = 50;

function positiveArg(name: string, fallback: number): number {
  const raw = argValue(name, String(fallback));
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return value;
}

/** Mostly finished runs with a few active ones, like a long-lived deployment. */
function statusOf(i: number): RunStatus {
  const slot = i % 100;
  if (slot < 2) return 'running';
  if (slot < 3) return 'queued';
  if (slot < 8) return 'failed';
  if (slot < 10) return 'cancelled';
  return 'completed';
}

function benchRecords(count: number): RunRecord[] {
  const config = resolveRunConfig('fmnist-tiny', {});
  const plan = planRun(60_000, config.train);
  const start = Date.now() - count * 60_000;
  return Array.from({ length: count }, (_, i) => {
    const status = statusOf(i);
    const createdAt = new Date(start + i * 60_000).toISOString();
    const committed =
      status === 'completed' ? [plan.totalSteps] : status === 'queued' ? [] : [plan.stepsPerShard];
    const created = newRunRecord(
      {
        runId: `bench-${String(i).padStart(6, '0')}`,
        datasetName: 'fmnist',
        datasetSize: 60_000,
        config,
        device: 'cpu',
        ...plan,
        retryBudget: DEFAULT_RUN_RETRY_BUDGET,
        createdAt,
      },
      status,
    );
    return {
      ...created,
      lastCommittedStep: committed.at(-1) ?? null,
      committedSteps: committed,
      backend: status === 'queued' ? null : 'wasm',
      workerId: status === 'queued' ? null : 'bench-worker',
      latestMetrics:
        status === 'queued'
          ? null
          : { step: committed.at(-1) ?? 0, loss: 5 + (i % 7) / 10, imagesPerSecond: 55.7 },
      cancelRequested: status === 'cancelled',
      error: status === 'failed' ? 'shard 1 failed: out of memory' : null,
    };
  });
}

interface Answer {
  status: number;
  body: string;
  ms: number;
}

/** One GET; without an agent it opens a connection of its own. */
function get(
  url: string,
  headers: http.OutgoingHttpHeaders,
  agent: http.Agent | false = false,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const request = http.get(url, { agent, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          ms: performance.now() - started,
        }),
      );
    });
    request.on('error', reject);
  });
}

async function waitUntil(probe: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** CPU seconds used by the API process (from /proc, Linux, 10 ms ticks) and by this one (s3rver). */
function cpuSeconds(apiPid: number): number {
  const fields = readFileSync(`/proc/${apiPid}/stat`, 'utf8').split(') ')[1].split(' ');
  const own = process.cpuUsage();
  return (Number(fields[11]) + Number(fields[12])) / 100 + (own.user + own.system) / 1e6;
}

/** True when the API and the S3 server together used under 10 % of a core over the next second. */
async function isIdle(apiPid: number): Promise<boolean> {
  const before = cpuSeconds(apiPid);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return cpuSeconds(apiPid) - before < 0.1;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = http.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface LoadResult {
  requests: number;
  perSecond: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  failed: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * `total` requests with `concurrency` in flight over keep-alive connections of their own; latency
 * from issue to the body's last byte.
 */
async function load(
  url: string,
  headers: http.OutgoingHttpHeaders,
  total: number,
  concurrency: number,
): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const run = async (latencies: Float64Array) => {
    let failed = 0;
    await mapLimit([...latencies.keys()], concurrency, async (i) => {
      const answer = await get(url, headers, agent);
      latencies[i] = answer.ms;
      if (answer.status !== 200) failed += 1;
    });
    return failed;
  };
  try {
    const latencies = new Float64Array(total);
    const started = performance.now();
    const failed = await run(latencies);
    const seconds = (performance.now() - started) / 1000;
    latencies.sort();
    return {
      requests: total,
      perSecond: total / seconds,
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      max: latencies[total - 1],
      failed,
    };
  } finally {
    agent.destroy();
  }
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

function startApi(env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, [path.join(repoRoot, 'apps/api/dist/main.js')], {
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`the API exited (${code ?? signal}) during the benchmark`);
      process.exit(1);
    }
  });
  return child;
}

let stopping = false;

async function main(): Promise<void> {
  const runs = positiveArg('runs', 10_000);
  const requests = positiveArg('requests', 2000);
  const concurrency = positiveArg('concurrency', 20);
  const seedConcurrency = positiveArg('seed-concurrency', 16);
  const cpus = os.cpus();
  console.log(
    `bench:api — ${cpus[0]?.model ?? 'unknown CPU'} × ${cpus.length} cores, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'},` +
      ` node ${process.version}, load average ${os
        .loadavg()
        .map((value) => value.toFixed(2))
        .join(' ')}`,
  );
  console.log(`${runs} runs, ${requests} requests per route, concurrency ${concurrency}, keep-alive\n`);

  const connection = redisConnectionFromEnv() as RedisOptions;
  const redis = new Redis({ ...connection, maxRetriesPerRequest: 1 });
  await redis.ping();
  const prefix = `dinoq-bench-api-${randomBytes(4).toString('hex')}`;
  const directory = await mkdtemp(path.join(os.tmpdir(), 'dinoq-bench-api-'));
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
  let api: ChildProcess | null = null;
  try {
    const records = benchRecords(runs);
    let started = performance.now();
    await mapLimit(records, seedConcurrency, (record) => store.putJson(runRecordKey(record.runId), record));
    let seconds = (performance.now() - started) / 1000;
    console.log(
      `seeded ${runs} run.json into s3rver in ${seconds.toFixed(1)} s (${(runs / seconds).toFixed(0)} objects/s, ${seedConcurrency} in flight)`,
    );
    const index = new RunIndex(redis, prefix);
    started = performance.now();
    await index.rebuild(records);
    console.log(
      `RunIndex.rebuild of the same ${runs} records: ${(performance.now() - started).toFixed(0)} ms`,
    );

    const port = await freePort();
    const apiKey = randomBytes(12).toString('hex');
    api = startApi({
      ...process.env,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: BUCKET,
      S3_REGION: EMBEDDED_S3_REGION,
      S3_ACCESS_KEY_ID: EMBEDDED_S3_CREDENTIALS.accessKeyId,
      S3_SECRET_ACCESS_KEY: EMBEDDED_S3_CREDENTIALS.secretAccessKey,
      DINOQ_QUEUE_PREFIX: prefix,
      DINOQ_API_KEYS: apiKey,
      DINOQ_RECONCILE_INTERVAL_S: '0',
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    });
    const base = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${apiKey}` };
    await waitUntil(async () => (await get(`${base}/health/live`, {})).status === 200, 60_000, 'the API');
    // The API reconciles every run once at start; the figures below are for an API at rest.
    started = performance.now();
    await waitUntil(() => isIdle(api!.pid!), 600_000, 'the API to go idle after start-up');
    console.log(
      `the API went idle (start-up reconciliation over ${runs} runs) ${((performance.now() - started) / 1000).toFixed(1)} s after it answered`,
    );

    const first = await get(`${base}/runs?limit=${PAGE}`, auth);
    if (first.status !== 200) throw new Error(`GET /runs answered ${first.status}: ${first.body}`);
    const { total } = JSON.parse(first.body) as { total: number };
    if (total !== runs) throw new Error(`GET /runs counts ${total} runs, ${runs} were seeded`);

    // A cursor half-way down, reached by paging as a client would.
    let cursor: string | null = null;
    started = performance.now();
    for (let seen = 0; seen < Math.floor(runs / 2); seen += 500) {
      const page = await get(`${base}/runs?limit=500${cursor ? `&cursor=${cursor}` : ''}`, auth);
      cursor = (JSON.parse(page.body) as { nextCursor: string | null }).nextCursor;
    }
    seconds = (performance.now() - started) / 1000;
    console.log(`paged to run ${Math.floor(runs / 2)} in pages of 500 in ${seconds.toFixed(2)} s\n`);

    const routes: [string, string, http.OutgoingHttpHeaders][] = [
      [`GET /runs?limit=${PAGE} (first page)`, `/runs?limit=${PAGE}`, auth],
      [`GET /runs?status=running&limit=${PAGE}`, `/runs?status=running&limit=${PAGE}`, auth],
      [
        `GET /runs?limit=${PAGE}&cursor=… (run ${Math.floor(runs / 2)})`,
        `/runs?limit=${PAGE}&cursor=${cursor ?? ''}`,
        auth,
      ],
      ['GET /health', '/health', {}],
    ];
    const rows: string[][] = [
      ['route', 'requests', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'non-200'],
    ];
    // A first pass over every route lets V8 optimise the request path before anything is measured.
    for (const [, route, headers] of routes) await load(base + route, headers, requests, concurrency);
    for (const [name, route, headers] of routes) {
      const result = await load(base + route, headers, requests, concurrency);
      rows.push([
        name,
        String(result.requests),
        result.perSecond.toFixed(0),
        ...[result.p50, result.p95, result.p99, result.max].map((ms) => ms.toFixed(1)),
        String(result.failed),
      ]);
    }
    const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
    for (const row of rows) {
      console.log(
        row
          .map((cell, column) => (column === 0 ? cell.padEnd(widths[0]) : cell.padStart(widths[column])))
          .join('  '),
      );
    }

    await index.clear();
    const rebuilt = await get(`${base}/runs?limit=${PAGE}`, auth);
    console.log(
      `\nafter the index was dropped, GET /runs rebuilt it from S3 in ${(rebuilt.ms / 1000).toFixed(1)} s: HTTP ${rebuilt.status}` +
        (rebuilt.status === 200
          ? `, total ${(JSON.parse(rebuilt.body) as { total: number }).total}`
          : ` ${rebuilt.body}`),
    );
  } finally {
    stopping = true;
    if (api && api.exitCode === null) {
      const exited = new Promise((resolve) => api!.once('exit', resolve));
      api.kill('SIGTERM');
      await exited;
    }
    await deleteKeys(redis, `${prefix}:*`);
    redis.disconnect();
    client.destroy();
    await s3.close();
    await rm(directory, { recursive: true, force: true });
  }
}

main()
  .then(() => process.exit(0))
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  });
