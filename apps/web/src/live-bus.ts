import type { LiveJobEvent } from './api-types';

export interface LiveSubscriber {
  onHello?(): void;
  onJob?(event: LiveJobEvent): void;
}

/** One event stream for the whole page, shared by whichever views are showing. */
export class LiveBus {
  private readonly subscribers = new Set<LiveSubscriber>();

  subscribe(subscriber: LiveSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }

  hello(): void {
    for (const subscriber of this.subscribers) subscriber.onHello?.();
  }

  job(event: LiveJobEvent): void {
    for (const subscriber of this.subscribers) subscriber.onJob?.(event);
  }
}
