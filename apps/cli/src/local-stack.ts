import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  startEmbeddedS3,
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  type EmbeddedS3,
} from '@dinoq/storage';

/*
 * The product on one machine: the Redis that answers, an embedded S3 server, the API and worker
 * processes, started as a real deployment starts them (separate processes, configured by the
 * environment). `dinoq demo` drives one run through it; `dinoq up` keeps it up for the API, the
 * dashboard and `dinoq sweep`.
 */

const repoRoot = path.resolve(__dirname, '../../..');

export interface LocalStackOptions {
  /** Data root; S3 objects live under <root>/s3. */
  root: string;
  redisUrl: string;
  /** Worker processes (each one compute process). */
  workers: number;
  /** API port; 0 picks a free one. */
  port: number;
  /** The API's bearer key; default a random one. */
  apiKey?: string;
  /** Extra environment for the API and workers. */
  env?: Record<string, string>;
}

export interface CallResult {
  status: number;
  json: Record<string, unknown>;
}

export interface LocalStack {
  base: string;
  apiKey: string;
  s3: EmbeddedS3;
  /** One authenticated JSON request to the API. */
  call(method: string, route: string, body?: unknown): Promise<CallResult>;
  /** Stops the processes and the S3 server; exits with `code`. */
  stop(code: number): Promise<never>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export function redisAnswers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const sock = net.connect(Number(port || 6379), hostname);
    sock.setTimeout(1000);
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      sock.destroy();
    });
    sock.on('error', () => resolve(false));
    sock.on('timeout', () => {
      resolve(false);
      sock.destroy();
    });
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the stack and waits until the API answers with `workers` workers announced. */
export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  if (!(await redisAnswers(opts.redisUrl))) {
    throw new Error(
      `no Redis answers at ${opts.redisUrl}: run "bash scripts/setup.sh" (it starts one) or set REDIS_URL`,
    );
  }
  const s3 = await startEmbeddedS3({ directory: path.join(opts.root, 's3'), bucket: 'dinoq' });
  const port = opts.port || (await freePort());
  const apiKey = opts.apiKey ?? randomBytes(12).toString('hex');
  const env = {
    ...process.env,
    REDIS_URL: opts.redisUrl,
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: 'dinoq',
    S3_REGION: EMBEDDED_S3_REGION,
    S3_ACCESS_KEY_ID: EMBEDDED_S3_CREDENTIALS.accessKeyId,
    S3_SECRET_ACCESS_KEY: EMBEDDED_S3_CREDENTIALS.secretAccessKey,
    DINOQ_DATA_DIR: opts.root,
    DINOQ_API_KEYS: apiKey,
    DINOQ_RECONCILE_INTERVAL_S: '15',
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    // The AWS SDK warns on every start that releases after January 2027 need Node 22.
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...opts.env,
  };
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(
        children.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))),
      );
      await s3.close();
    }
    process.exit(code);
  };
  const start = (name: string, script: string) => {
    const child = spawn(process.execPath, [path.join(repoRoot, script)], {
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`${name} exited (${code ?? signal}); stopping the stack\n`);
      void stop(1);
    });
    children.push(child);
  };
  process.once('SIGINT', () => void stop(130));
  process.once('SIGTERM', () => void stop(143));

  start('api', 'apps/api/dist/main.js');
  for (let i = 0; i < opts.workers; i++) start(`worker ${i + 1}`, 'apps/worker/dist/main.js');
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, route: string, body?: unknown): Promise<CallResult> => {
    const res = await fetch(base + route, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  try {
    for (let i = 0; ; i++) {
      // Worker counts are in the detailed answer, which needs the key.
      const health = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${apiKey}` } }).catch(
        () => null,
      );
      const body = health?.ok ? ((await health.json()) as { workers?: { count?: number } }) : null;
      if (body && (body.workers?.count ?? 0) >= opts.workers) break;
      if (i > 240) throw new Error('the API or the workers did not come up within 2 minutes');
      await sleep(500);
    }
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    return stop(1);
  }
  return { base, apiKey, s3, call, stop };
}
