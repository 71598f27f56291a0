import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { IdParamPipe } from '../http/id-param.pipe';
import { openApiSchema } from '../http/openapi';
import { ZodPipe } from '../http/zod.pipe';
import {
  createEvaluationSchema,
  evaluationViewSchema,
  type CreateEvaluationRequest,
  type EvaluationView,
} from './evaluation.schemas';
import { EvaluationsService } from './evaluations.service';

@ApiTags('evaluations')
@ApiBearerAuth()
@Controller('runs/:id/evaluations')
export class EvaluationsController {
  constructor(private readonly evaluations: EvaluationsService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Queue a k-NN and/or linear-probe evaluation of a committed checkpoint' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiBody({ schema: openApiSchema(createEvaluationSchema) })
  @ApiResponse({ status: 202, description: 'evaluation queued; poll GET .../evaluations/<evalId>' })
  @ApiResponse({ status: 409, description: 'the run has no committed checkpoint yet' })
  create(
    @Param('id', new IdParamPipe('runId')) runId: string,
    @Body(new ZodPipe(createEvaluationSchema)) body: CreateEvaluationRequest,
  ) {
    return this.evaluations.create(runId, body);
  }

  @Get()
  @ApiOperation({ summary: 'Stored reports plus queued, running and failed evaluations' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiResponse({ status: 200, schema: openApiSchema(z.array(evaluationViewSchema)) })
  list(@Param('id', new IdParamPipe('runId')) runId: string): Promise<EvaluationView[]> {
    return this.evaluations.list(runId);
  }

  @Get(':evalId')
  @ApiOperation({ summary: 'One evaluation: its report once completed, else its job state' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiParam({ name: 'evalId' })
  @ApiResponse({ status: 200, schema: openApiSchema(evaluationViewSchema) })
  @ApiResponse({ status: 422, description: 'the stored report is not an evaluation report; `key` names it' })
  get(
    @Param('id', new IdParamPipe('runId')) runId: string,
    @Param('evalId', new IdParamPipe('evalId')) evalId: string,
  ): Promise<EvaluationView> {
    return this.evaluations.get(runId, evalId);
  }
}
