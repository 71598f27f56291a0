import { Controller, Get, Req, Res } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ApiKeyVerifier } from '../http/api-key-verifier';
import { Public } from '../http/public.decorator';
import { HealthService } from './health.service';

@ApiTags('operations')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthService,
    private readonly verifier: ApiKeyVerifier,
  ) {}

  /**
   * Public for readiness probes, which need the status code and nothing more; hostnames, worker
   * ids, queues and current jobs are for callers holding a key.
   */
  @Get()
  @Public()
  @ApiOperation({
    summary:
      'Readiness: {status} without a key; with a key also the Redis and storage checks and the workers seen ' +
      'recently. Answers are shared for up to 1 s.',
  })
  @ApiResponse({ status: 200, description: 'Redis and storage are up' })
  @ApiResponse({ status: 503, description: 'Redis or storage is down' })
  async check(@Req() request: Request, @Res({ passthrough: true }) response: Response) {
    const report = await this.health.check();
    response.status(report.status === 'ok' ? 200 : 503);
    if (!this.verifier.verify(request.headers.authorization).ok) return { status: report.status };
    return report;
  }

  @Get('live')
  @Public()
  @ApiOperation({ summary: 'Process liveness only: 200 while the HTTP server answers (no auth)' })
  live() {
    return { status: 'ok' };
  }
}
