import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ROOT, buildApp, buildWorker } from './helpers/build';
import { waitFor } from './helpers/stack';
import { processAlive } from './helpers/worker-process';

/*
 * `dinoq up`: the local stack (embedded S3, the API, N worker processes) kept up for the API, the
 * dashboard and `dinoq sweep`, and stopped whole by one signal.
 */

const CLI = path.join(ROOT, 'apps/cli/dist/main.js');
const API = path.join(ROOT, 'apps/api/dist/main.js');

let child: ChildProcess | undefined;
let dataDir: string;

beforeAll(() => {
  buildWorker();
  buildApp('api', API);
  buildApp('cli', CLI);
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-up-'));
});

afterAll(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** The processes whose parent is `parent` (Linux /proc). */
function childPids(parent: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        // The parent pid is the 4th field, after the name in parentheses.
        const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

test('dinoq up serves the API with the asked workers, and SIGTERM stops every process', async () => {
  const apiKey = randomBytes(8).toString('hex');
  const prefix = `up-${randomBytes(4).toString('hex')}`;
  child = spawn(process.execPath, [CLI, 'up', '--workers', '2', '--port', '0', '--data-dir', dataDir], {
    env: { ...process.env, DINOQ_API_KEY: apiKey, DINOQ_QUEUE_PREFIX: prefix, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));

  const base = await waitFor(
    async () => /export DINOQ_API_URL=(\S+) DINOQ_API_KEY=(\S+)/.exec(out)?.[1],
    90_000,
    'the export line',
  );
  expect(out).toContain(`DINOQ_API_KEY=${apiKey}`);
  expect(out).toContain('2 worker(s)');

  const health = await fetch(`${base}/health`, { headers: { authorization: `Bearer ${apiKey}` } });
  expect(health.status).toBe(200);
  const body = (await health.json()) as { workers: { count: number; list: { workerId: string }[] } };
  expect(body.workers.count).toBe(2);
  expect(new Set(body.workers.list.map((w) => w.workerId)).size).toBe(2);
  // The API and the two workers are processes of their own.
  const pids = childPids(child.pid!);
  expect(pids).toHaveLength(3);
  // The S3 server of the stack holds the bucket under the data root.
  expect(fs.existsSync(path.join(dataDir, 's3'))).toBe(true);
  // Requests without the key are refused.
  expect((await fetch(`${base}/runs`)).status).toBe(401);

  child.kill('SIGTERM');
  expect(await exited).toBe(143);
  for (const pid of pids) expect(processAlive(pid)).toBe(false);
  await expect(fetch(`${base}/health`)).rejects.toThrow();
}, 180_000);
