import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const WORKER_MAIN = path.join(ROOT, 'apps/worker/dist/main.js');

const LOCK = path.join(tmpdir(), 'dinoq-e2e-build.lock');
const STALE_LOCK_MS = 5 * 60_000;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Builds the worker and the libraries it runs on (`tsc -b`, incremental: a no-op when nothing
 * changed). End-to-end tests run the built worker as a separate `node` process.
 */
export function buildWorker(): void {
  buildApp('worker', WORKER_MAIN);
}

/**
 * Builds `apps/<app>` and the libraries it uses. A lock folder keeps concurrent test files from
 * writing the same outputs at once; `built` is a file the build must leave behind.
 */
export function buildApp(app: string, built: string): void {
  const deadline = Date.now() + STALE_LOCK_MS;
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > STALE_LOCK_MS) rmdirSync(LOCK);
      } catch {
        // Released between the two calls.
      }
      if (Date.now() > deadline) throw new Error(`could not take the build lock ${LOCK}`);
      sleep(200);
    }
  }
  try {
    execFileSync(
      process.execPath,
      [require.resolve('typescript/bin/tsc'), '-b', `apps/${app}/tsconfig.json`],
      {
        cwd: ROOT,
        stdio: 'pipe',
      },
    );
  } catch (error) {
    const output = (error as { stdout?: Buffer }).stdout?.toString() ?? '';
    // tsc -b still emits JavaScript for files that type-check with errors elsewhere; type errors
    // are the type-check step's business, a missing build is this one's.
    if (!existsSync(built)) throw new Error(`building apps/${app} failed:\n${output}`);
    process.stderr.write(
      `warning: tsc -b apps/${app} reported errors; running the emitted build:\n${output}\n`,
    );
  } finally {
    rmdirSync(LOCK);
  }
}
