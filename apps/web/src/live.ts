import type { LiveJobEvent } from './api-types';

export interface LiveHandlers {
  /** The stream (re)connected: whatever the page shows may be stale, refetch it. */
  onHello(): void;
  onJob(event: LiveJobEvent): void;
  /** The stream dropped; `closed` when the browser gave up on it (an answer other than 200). */
  onDown(closed: boolean): void;
}

const RETRY_CLOSED_MS = 3_000;

/**
 * The API's server-sent events. EventSource sends the session cookie (same origin) and reconnects
 * by itself after a dropped stream; after a refused one (401, a restarting API) it stops, so this
 * opens a new one. Every connection starts with `hello`, after which nothing is missed.
 */
export function connectLive(handlers: LiveHandlers): () => void {
  let source: EventSource | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const open = () => {
    source = new EventSource('/events');
    source.addEventListener('hello', () => handlers.onHello());
    source.addEventListener('job', (message) => handlers.onJob(JSON.parse(message.data) as LiveJobEvent));
    source.addEventListener('error', () => {
      const closed = source?.readyState === EventSource.CLOSED;
      handlers.onDown(closed);
      if (closed) retry = setTimeout(open, RETRY_CLOSED_MS);
    });
  };
  open();
  return () => {
    clearTimeout(retry);
    source?.close();
  };
}
