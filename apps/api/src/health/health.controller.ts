import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ApiKeyVerifier } from '../http/api-key-verifier';
import { Public } from '../http/public.decorator';
import { HealthService } from './health.service';
import { ServingState } from './serving-state';

const SHUTTING_DOWN = { status: 'shutting-down' } as const;

@ApiTags('operations')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthService,
    private readonly verifier: ApiKeyVerifier,
    private readonly state: ServingState,
  ) {}

  /**
   * Dependencies as they are: {status} without a key (`ok`, or `degraded` while Redis or storage
   * is down); hostnames, worker ids, queues and current jobs are for callers holding a key. An
   * outage is reported, not answered with 503: the process still serves what needs neither.
   */
  @Get()
  @Public()
  @ApiOperation({
    summary:
      'Dependency report: {status: ok | degraded} without a key; with a key also the Redis and storage ' +
      'checks and the workers seen recently. 200 while this process serves, whatever the dependencies; ' +
      'answers are shared for up to 1 s.',
  })
  @ApiResponse({ status: 200, description: 'serving; status says whether Redis and storage are up' })
  @ApiResponse({ status: 503, description: 'this process is shutting down' })
  async check(@Req() request: Request, @Res({ passthrough: true }) response: Response) {
    if (!this.state.serving) {
      response.status(503);
      return SHUTTING_DOWN;
    }
    const report = await this.health.check();
    if (!this.verifier.verifyRequest(request).ok) return { status: report.status };
    return report;
  }

  /** For readiness probes: no I/O, so it answers at once whatever Redis and storage do. */
  @Get('ready')
  @Public()
  @ApiOperation({
    summary:
      'Readiness: 200 while this process serves, 503 once it is shutting down; dependencies do not count',
  })
  @ApiResponse({ status: 200, description: 'serving' })
  @ApiResponse({ status: 503, description: 'shutting down' })
  ready(@Res({ passthrough: true }) response: Response) {
    if (this.state.serving) return { status: 'ready' };
    response.status(503);
    return SHUTTING_DOWN;
  }

  @Get('live')
  @Public()
  @ApiOperation({ summary: 'Process liveness only: 200 while the HTTP server answers (no auth)' })
  live() {
    return { status: 'ok' };
  }
}
