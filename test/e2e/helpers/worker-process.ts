import { spawn, type ChildProcess } from 'node:child_process';
import { WORKER_MAIN } from './build';

export interface LogLine {
  msg?: string;
  level?: number;
  [field: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** `node apps/worker/dist/main.js` with its JSON log lines collected. */
export class WorkerProcess {
  readonly lines: LogLine[] = [];
  readonly rawOutput: string[] = [];
  readonly exited: Promise<Exit>;
  private readonly child: ChildProcess;
  private readonly waiters = new Set<() => void>();
  private exit: Exit | null = null;

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
        this.rawOutput.push(text);
        if (!text.startsWith('{')) continue;
        try {
          this.lines.push(JSON.parse(text) as LogLine);
        } catch {
          // Not a log line.
        }
      }
      for (const wake of this.waiters) wake();
    };
    this.child.stderr?.on('data', onData);
    this.child.stdout?.on('data', onData);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        for (const wake of this.waiters) wake();
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`worker ${this.name} has no pid`);
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** Resolves with the first log line that matches; rejects on timeout or when the process exits. */
  waitForLog(match: (line: LogLine) => boolean, timeoutMs: number, what = 'a log line'): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.find(match);
        if (found) return finish(() => resolve(found));
        if (this.exit) {
          return finish(() =>
            reject(
              new Error(
                `worker ${this.name} exited (${JSON.stringify(this.exit)}) before ${what}:\n${this.tail()}`,
              ),
            ),
          );
        }
      };
      const timer = setTimeout(
        () =>
          finish(() =>
            reject(new Error(`worker ${this.name}: no ${what} within ${timeoutMs} ms:\n${this.tail()}`)),
          ),
        timeoutMs,
      );
      const finish = (settle: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        settle();
      };
      this.waiters.add(check);
      check();
    });
  }

  ready(timeoutMs = 60_000): Promise<LogLine> {
    return this.waitForLog((line) => line.msg === 'worker ready', timeoutMs, '"worker ready"');
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Stops the process if it still runs (SIGKILL after a short SIGTERM grace) and waits for it. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  tail(lines = 30): string {
    return this.rawOutput.slice(-lines).join('\n');
  }
}

/** Whether a process with this pid exists (signal 0 checks without delivering anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
