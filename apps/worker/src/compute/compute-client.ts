import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from '../logger';
import type {
  ChildBackend,
  ChildMessage,
  ComputeJob,
  LogLevel,
  ParentMessage,
  SerializedError,
} from './protocol';

/** The child reported that the job failed; `unrecoverable` and `abandoned` say how to treat it. */
export class ComputeJobError extends Error {
  readonly unrecoverable: boolean;
  readonly abandoned: boolean;
  readonly childStack?: string;

  constructor(error: SerializedError) {
    super(error.message);
    this.name = error.name;
    this.unrecoverable = error.unrecoverable;
    this.abandoned = error.name === 'JobAbandonedError';
    this.childStack = error.stack;
  }
}

/** The compute process died (crash, out of memory, killed) while it held a job. */
export class ComputeProcessExitedError extends Error {
  override readonly name = 'ComputeProcessExitedError';
}

export interface ComputeHandlers {
  onProgress(progress: Record<string, unknown>): void;
  onLog(level: LogLevel, message: string, fields: Record<string, unknown> | undefined, toJob: boolean): void;
}

export interface ComputeClientOptions {
  /** The compiled compute-child.js. */
  childPath: string;
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** Loading a native GPU backend can take a while; this bounds it. */
  startupTimeoutMs?: number;
}

interface Pending {
  requestId: number;
  jobId: string;
  handlers: ComputeHandlers;
  resolve(result: unknown): void;
  reject(error: Error): void;
}

interface Running {
  child: ChildProcess;
  ready: Promise<ChildBackend>;
  exited: Promise<void>;
}

/**
 * The worker's side of the long-lived compute process: forks it, waits until its backend is
 * loaded, sends it one job at a time and relays what comes back. When the process dies the job
 * in flight fails, and the next `run` forks a fresh one.
 */
export class ComputeClient {
  private running: Running | null = null;
  private pending: Pending | null = null;
  private nextRequestId = 1;
  private lastBackend: ChildBackend | null = null;
  private closed = false;

  constructor(private readonly options: ComputeClientOptions) {}

  /** The backend of the newest compute process, once one reported it. */
  get backend(): ChildBackend | null {
    return this.lastBackend;
  }

  get busy(): boolean {
    return this.pending !== null;
  }

  get pid(): number | undefined {
    return this.running?.child.pid;
  }

  /** Forks the compute process unless it runs, and resolves with its backend once loaded. */
  start(): Promise<ChildBackend> {
    if (this.closed) return Promise.reject(new Error('the compute process client is closed'));
    this.running ??= this.spawn();
    return this.running.ready;
  }

  async run(job: Omit<ComputeJob, 'requestId'>, handlers: ComputeHandlers): Promise<unknown> {
    if (this.pending) {
      throw new Error(
        `compute process is busy with job ${this.pending.jobId}; the device mutex should prevent this`,
      );
    }
    const { child } = await this.startedProcess();
    const requestId = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.pending = { requestId, jobId: job.jobId, handlers, resolve, reject };
      this.post(child, { type: 'run', job: { ...job, requestId } });
    });
  }

  /** Asks the running job to stop at its next safe point without committing anything. */
  abandon(reason: string): void {
    if (this.running && this.pending) this.post(this.running.child, { type: 'abandon', reason });
  }

  /** Ends the compute process at once; a job in flight fails. */
  kill(): void {
    this.running?.child.kill('SIGKILL');
  }

  /** Disconnects (the child exits on disconnect), killing it if it has not gone after `timeoutMs`. */
  async close(timeoutMs = 5_000): Promise<void> {
    this.closed = true;
    const running = this.running;
    if (!running) return;
    if (running.child.connected) running.child.disconnect();
    const timer = setTimeout(() => running.child.kill('SIGKILL'), timeoutMs);
    try {
      await running.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  private async startedProcess(): Promise<Running> {
    await this.start();
    if (!this.running) throw new Error('the compute process exited right after it started');
    return this.running;
  }

  private post(child: ChildProcess, message: ParentMessage): void {
    if (!child.connected) return;
    child.send(message, (error) => {
      if (error) this.options.logger.warn({ err: error.message }, 'could not message the compute process');
    });
  }

  private spawn(): Running {
    const { logger } = this.options;
    const child = fork(this.options.childPath, [], {
      env: this.options.env,
      // Debugger flags would make the child fight the parent for the inspector port.
      execArgv: process.execArgv.filter((flag) => !flag.startsWith('--inspect')),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    logger.info({ computePid: child.pid }, 'compute process started');

    let settleReady: { resolve(b: ChildBackend): void; reject(e: Error): void } | null = null;
    const ready = new Promise<ChildBackend>((resolve, reject) => (settleReady = { resolve, reject }));
    // Readiness may be awaited by nobody (e.g. a restart between jobs); failures are handled below.
    ready.catch(() => undefined);
    const timeoutMs = this.options.startupTimeoutMs ?? 180_000;
    const startupTimer = setTimeout(() => {
      settleReady?.reject(new Error(`compute process did not load a backend within ${timeoutMs} ms`));
      child.kill('SIGKILL');
    }, timeoutMs);

    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        clearTimeout(startupTimer);
        if (this.running?.child === child) this.running = null;
        const how = `code ${code ?? 'none'}, signal ${signal ?? 'none'}`;
        settleReady?.reject(new Error(`compute process exited during start-up (${how})`));
        const pending = this.pending;
        if (pending) {
          this.pending = null;
          pending.reject(
            new ComputeProcessExitedError(
              `compute process exited (${how}) while running job ${pending.jobId}`,
            ),
          );
        }
        if (!this.closed)
          logger.warn({ code, signal }, 'compute process exited; the next job starts a new one');
        resolve();
      });
    });

    child.on('error', (error) => logger.error({ err: error.message }, 'compute process error'));
    child.on('message', (message: ChildMessage) => {
      switch (message.type) {
        case 'ready':
          clearTimeout(startupTimer);
          this.lastBackend = message.backend;
          settleReady?.resolve(message.backend);
          settleReady = null;
          return;
        case 'startup-failed':
          clearTimeout(startupTimer);
          settleReady?.reject(new Error(`compute process could not start: ${message.error.message}`));
          settleReady = null;
          return;
        case 'progress':
          if (this.pending?.requestId === message.requestId)
            this.pending.handlers.onProgress(message.progress);
          return;
        case 'log':
          if (message.requestId !== null && this.pending?.requestId === message.requestId) {
            this.pending.handlers.onLog(
              message.level,
              message.message,
              message.fields,
              message.toJob === true,
            );
          } else {
            logger[message.level]({ ...message.fields, source: 'compute' }, message.message);
          }
          return;
        case 'result':
        case 'failed': {
          const pending = this.pending;
          if (!pending || pending.requestId !== message.requestId) return;
          this.pending = null;
          if (message.type === 'result') pending.resolve(message.result);
          else pending.reject(new ComputeJobError(message.error));
          return;
        }
      }
    });
    return { child, ready, exited };
  }
}
