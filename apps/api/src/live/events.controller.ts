import { Controller, Get, Req, Res, type OnModuleDestroy } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { LiveHello, LiveJobEvent } from '@dinoq/jobs';
import { QueueEventsRepository } from '../repositories/queue-events.repository';

/** A comment line this often keeps proxies and load balancers from closing a quiet stream. */
const KEEP_ALIVE_MS = 15_000;
/** How soon a browser's EventSource reconnects after the stream drops. */
const RECONNECT_MS = 2_000;

@ApiTags('live')
@ApiBearerAuth()
@Controller('events')
export class EventsController implements OnModuleDestroy {
  /** Open streams and how to stop each one's timer and subscription. */
  private readonly open = new Map<Response, () => void>();

  constructor(private readonly queueEvents: QueueEventsRepository) {}

  @Get()
  @ApiOperation({
    summary:
      'Server-sent events: `hello` on every (re)connection (refetch state then), then one `job` event ' +
      '(a LiveJobEvent: added, active, progress, completed, failed) per BullMQ queue event',
  })
  @ApiProduces('text/event-stream')
  @ApiResponse({ status: 200, description: 'an endless text/event-stream' })
  async stream(@Req() request: Request, @Res() response: Response): Promise<void> {
    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx and similar proxies would otherwise hold events back in their buffers.
      'X-Accel-Buffering': 'no',
    });
    const send = (event: string, data: LiveHello | LiveJobEvent) =>
      response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    response.write(`retry: ${RECONNECT_MS}\n\n`);
    const unsubscribe = await this.queueEvents.subscribe((event) => send('job', event));
    if (request.destroyed) return unsubscribe();
    // After the subscription: state the page reads once it sees hello already has every later change.
    send('hello', { connectedAt: new Date().toISOString() });
    const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), KEEP_ALIVE_MS);
    const stop = () => {
      clearInterval(keepAlive);
      unsubscribe();
      this.open.delete(response);
    };
    this.open.set(response, stop);
    request.on('close', stop);
  }

  /** Ends every stream, so closing the HTTP server does not wait for browsers to hang up. */
  onModuleDestroy(): void {
    for (const [response, stop] of this.open) {
      stop();
      response.end();
    }
  }
}
