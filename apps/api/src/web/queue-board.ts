import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { RequestHandler } from 'express';
import { allQueues } from '@dinoq/jobs';
import type { JobQueues } from '../repositories/job-queues.repository';

/** Outside /ui/, whose files are public: the board shows job payloads and errors. */
export const QUEUE_BOARD_PATH = '/queues';

/**
 * bull-board's page and API over every queue, read-only: jobs are retried, cancelled and removed
 * through the API's own routes, which keep run records in step. Built on the first request, so
 * an API nobody browses opens no queue connections for it. Mounted after the API-key middleware,
 * so it answers only to a key or a session cookie.
 */
export function queueBoard(jobs: JobQueues): RequestHandler {
  let router: RequestHandler | null = null;
  return (request, response, next) => {
    if (!router) {
      const adapter = new ExpressAdapter();
      adapter.setBasePath(QUEUE_BOARD_PATH);
      createBullBoard({
        queues: allQueues.map((name) => new BullMQAdapter(jobs.queue(name), { readOnlyMode: true })),
        serverAdapter: adapter,
        options: { uiConfig: { boardTitle: 'dinoq queues' } },
      });
      router = adapter.getRouter() as RequestHandler;
    }
    router(request, response, next);
  };
}
