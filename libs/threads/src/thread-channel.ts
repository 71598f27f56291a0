import type { Worker } from 'node:worker_threads';

/** Every reply names the request it answers; `error` replies carry the thread's failure. */
export type ChannelReply = { id: number; type: string } | ChannelErrorReply;
export interface ChannelErrorReply {
  id: number;
  type: 'error';
  message: string;
  stack?: string;
}

type Pending<R> = { resolve: (r: R) => void; reject: (e: Error) => void };

/**
 * Request/reply over one worker thread: each request gets an id, its reply settles it, an `error`
 * reply rejects it with the thread's message (prefixed with `label`), and a crashed or exited
 * thread rejects everything in flight and every later request.
 */
export class ThreadChannel<Reply extends ChannelReply> {
  private nextId = 1;
  private readonly pending = new Map<number, Pending<Reply>>();
  private failure: Error | null = null;

  constructor(
    readonly label: string,
    private readonly worker: Worker,
  ) {
    worker.on('message', (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.type === 'error') {
        const { message, stack } = reply as ChannelErrorReply;
        const err = new Error(`${label}: ${message}`);
        if (stack) err.stack = `${err.message}\n${stack.split('\n').slice(1).join('\n')}`;
        p.reject(err);
      } else {
        p.resolve(reply);
      }
    });
    worker.on('error', (e) => this.fail(new Error(`${label} crashed: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`${label} exited with code ${code}`)));
  }

  /** Sends `message` with a fresh id; `transfer` moves those buffers to the thread. */
  request(message: object, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Stops the thread; what is in flight and every later request is rejected as closed. */
  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    this.fail(new Error(`${this.label} was closed`));
    await this.worker.terminate();
  }
}
