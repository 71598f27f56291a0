import { Controller, Get, Res } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../http/public.decorator';
import { HealthService } from './health.service';

@ApiTags('operations')
@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  @Public()
  @ApiOperation({ summary: 'Redis and object storage reachability, and the workers seen recently (no auth)' })
  @ApiResponse({ status: 200, description: 'Redis and storage are up' })
  @ApiResponse({ status: 503, description: 'Redis or storage is down' })
  async check(@Res({ passthrough: true }) response: Response) {
    const report = await this.health.check();
    response.status(report.status === 'ok' ? 200 : 503);
    return report;
  }

  @Get('live')
  @Public()
  @ApiOperation({ summary: 'Process liveness only: 200 while the HTTP server answers (no auth)' })
  live() {
    return { status: 'ok' };
  }
}
