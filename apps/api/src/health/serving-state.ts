import { Injectable, type OnModuleDestroy } from '@nestjs/common';

/**
 * Whether this process still takes requests: true from start-up until the application begins to
 * close. Readiness follows this alone, never Redis or storage, so a dependency outage does not
 * take every API replica out of its Service at once (each would answer the same 503 anyway).
 */
@Injectable()
export class ServingState implements OnModuleDestroy {
  private draining = false;

  get serving(): boolean {
    return !this.draining;
  }

  /** Readiness answers 503 from now on; the application closes next. */
  beginShutdown(): void {
    this.draining = true;
  }

  // The first hook Nest runs on close, before the HTTP server stops accepting connections.
  onModuleDestroy(): void {
    this.beginShutdown();
  }
}
