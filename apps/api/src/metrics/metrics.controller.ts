import { Controller, Get, Header, Param, Res, ServiceUnavailableException } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { allQueues, type QueueName } from '@dinoq/jobs';
import { notFound } from '../http/api-errors';
import { MetricsService } from './metrics.service';

@ApiTags('operations')
@ApiBearerAuth()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  @ApiOperation({ summary: 'Prometheus metrics: queue depth, job durations, training throughput, workers' })
  @ApiProduces('text/plain')
  async scrape(@Res() response: Response): Promise<void> {
    const { contentType, body } = await this.metrics.render();
    response.setHeader('Content-Type', contentType);
    response.send(body);
  }

  /**
   * For an autoscaler polling JSON (KEDA's `metrics-api` trigger, `valueLocation: demand`): the
   * pods one queue asks for, with the parts of the sum.
   */
  @Get('queues/:queue/demand')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary:
      'Worker pods one queue asks for: waiting + prioritized + delayed due within the look-ahead + ' +
      'workers busy with its jobs (each busy worker counted once). Answers are shared for up to 1 s.',
  })
  @ApiParam({ name: 'queue', enum: allQueues })
  @ApiResponse({ status: 404, description: 'no such queue' })
  @ApiResponse({ status: 503, description: 'Redis did not answer' })
  async demand(@Param('queue') queue: string) {
    if (!(allQueues as string[]).includes(queue)) {
      throw notFound(`no queue "${queue}"; queues: ${allQueues.join(', ')}`, 'queue');
    }
    try {
      return await this.metrics.demand(queue as QueueName);
    } catch (error) {
      throw new ServiceUnavailableException({
        statusCode: 503,
        error: 'Service Unavailable',
        message: `queue demand could not be read: ${(error as Error).message}`,
      });
    }
  }
}
