import { Body, Controller, Get, Header, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { z } from 'zod';
import { storedMetricsLineSchema } from '@dinoq/jobs';
import { IdParamPipe } from '../http/id-param.pipe';
import { openApiQuery, openApiSchema } from '../http/openapi';
import { ZodPipe } from '../http/zod.pipe';
import { RunLifecycleService } from './run-lifecycle.service';
import {
  createRunSchema,
  listRunsQuerySchema,
  metricsQuerySchema,
  runListSchema,
  type CreateRunRequest,
  type ListRunsQuery,
  resizeRunSchema,
  type ResizeRunRequest,
} from './run.schemas';
import { RunsService } from './runs.service';

const SKIPPED_LINES_HEADER = 'X-Skipped-Lines';

@ApiTags('runs')
@ApiBearerAuth()
@Controller('runs')
export class RunsController {
  constructor(
    private readonly runs: RunsService,
    private readonly lifecycle: RunLifecycleService,
  ) {}

  @Post()
  @ApiOperation({ summary: 'Create a training run: validate the config, write run.json, queue shard 0' })
  @ApiBody({ schema: openApiSchema(createRunSchema) })
  @ApiResponse({ status: 201, description: 'run created and shard 0 queued' })
  @ApiResponse({
    status: 400,
    description: 'invalid config: `reasons` lists every problem as "path: message"',
  })
  @ApiResponse({ status: 404, description: 'the dataset does not exist' })
  @ApiResponse({ status: 409, description: 'a run with this id exists' })
  create(@Body(new ZodPipe(createRunSchema)) body: CreateRunRequest) {
    return this.runs.create(body);
  }

  @Get()
  @ApiOperation({
    summary: 'A page of run summaries, oldest first unless order=desc; follow nextCursor for the next page',
  })
  @openApiQuery(listRunsQuerySchema)
  @ApiResponse({ status: 200, description: 'one page of runs', schema: openApiSchema(runListSchema) })
  @ApiResponse({ status: 400, description: 'a bad query parameter: `reasons` names it' })
  @Header('Content-Type', 'application/json; charset=utf-8')
  list(@Query(new ZodPipe(listRunsQuerySchema)) query: ListRunsQuery) {
    return this.runs.list(query);
  }

  @Get(':id')
  @ApiOperation({
    summary: 'Status, shard i of n, step, epoch, latest metrics, committed checkpoints, backend',
  })
  @ApiParam({ name: 'id', description: 'run id' })
  get(@Param('id', new IdParamPipe('runId')) runId: string) {
    return this.runs.get(runId);
  }

  @Get(':id/metrics')
  @ApiOperation({ summary: 'Training metric lines of every shard (runs/<id>/metrics/*.jsonl)' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiQuery({ name: 'fromStep', required: false, type: Number })
  @ApiResponse({
    status: 200,
    description: 'one entry per trained step, in step order',
    schema: openApiSchema(z.array(storedMetricsLineSchema)),
    headers: {
      [SKIPPED_LINES_HEADER]: {
        description: 'stored lines left out because they are not metrics lines (logged with their key)',
        schema: { type: 'integer' },
      },
    },
  })
  async metrics(
    @Param('id', new IdParamPipe('runId')) runId: string,
    @Query(new ZodPipe(metricsQuerySchema)) query: { fromStep?: number },
    @Res({ passthrough: true }) response: Response,
  ) {
    const { lines, skipped } = await this.runs.metrics(runId, query.fromStep);
    response.setHeader(SKIPPED_LINES_HEADER, String(skipped));
    return lines;
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Request cancellation: a queued shard is removed, a running one finishes first' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiResponse({ status: 409, description: 'the run is completed or failed' })
  cancel(@Param('id', new IdParamPipe('runId')) runId: string) {
    return this.lifecycle.cancel(runId);
  }

  @Post(':id/resume')
  @HttpCode(202)
  @ApiOperation({ summary: 'Resume a failed or cancelled run from its newest checkpoint (generation + 1)' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiResponse({
    status: 409,
    description: 'the run is not failed or cancelled, or has nothing left to train',
  })
  resume(@Param('id', new IdParamPipe('runId')) runId: string) {
    return this.lifecycle.resume(runId);
  }

  @Post(':id/resize')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Change how many slices (workers) the next rounds of a run trained in rounds use; the round in ' +
      'flight finishes with its own',
  })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiBody({ schema: openApiSchema(resizeRunSchema) })
  @ApiResponse({
    status: 409,
    description: 'the run is not trained in rounds, or is no longer queued or running',
  })
  resize(
    @Param('id', new IdParamPipe('runId')) runId: string,
    @Body(new ZodPipe(resizeRunSchema)) body: ResizeRunRequest,
  ) {
    return this.lifecycle.resize(runId, body.slices);
  }

  @Post(':id/repair')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Rebuild an unreadable run.json from spec.json and the committed checkpoints, as a failed run ' +
      'that can be resumed; a readable record is returned unchanged (`repaired: false`)',
  })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiResponse({
    status: 422,
    description: 'run.json is unreadable and there is no spec.json to rebuild it from',
  })
  repair(@Param('id', new IdParamPipe('runId')) runId: string) {
    return this.lifecycle.repair(runId);
  }
}
