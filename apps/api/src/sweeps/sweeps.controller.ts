import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import { IdParamPipe } from '../http/id-param.pipe';
import { openApiSchema } from '../http/openapi';
import { ZodPipe } from '../http/zod.pipe';
import {
  createSweepSchema,
  sweepListSchema,
  sweepViewSchema,
  type CreateSweepRequest,
} from './sweep.schemas';
import { SweepsService } from './sweeps.service';

@ApiTags('sweeps')
@ApiBearerAuth()
@Controller('sweeps')
export class SweepsController {
  constructor(private readonly sweeps: SweepsService) {}

  @Post()
  @ApiOperation({
    summary:
      'Create a sweep: every trial of the search space is checked against the run schema, then each ' +
      'becomes an ordinary run; rungs are evaluated and the worse trials cancelled (successive halving)',
  })
  @ApiBody({ schema: openApiSchema(createSweepSchema) })
  @ApiResponse({
    status: 201,
    description: 'sweep created, its trials queued',
    schema: openApiSchema(sweepViewSchema),
  })
  @ApiResponse({
    status: 400,
    description: 'a bad request or search space: `reasons` names every config path and value refused',
  })
  @ApiResponse({ status: 404, description: 'the dataset does not exist' })
  @ApiResponse({ status: 409, description: 'a sweep with this id exists' })
  create(@Body(new ZodPipe(createSweepSchema)) body: CreateSweepRequest) {
    return this.sweeps.create(body);
  }

  @Get()
  @ApiOperation({ summary: 'Every sweep with its status, oldest first' })
  @ApiResponse({ status: 200, description: 'the sweeps', schema: openApiSchema(sweepListSchema) })
  list() {
    return this.sweeps.list();
  }

  @Get(':id')
  @ApiOperation({
    summary: 'Trials with their overrides, rung results and states, the status, the best so far',
  })
  @ApiParam({ name: 'id', description: 'sweep id' })
  @ApiResponse({ status: 200, description: 'the sweep', schema: openApiSchema(sweepViewSchema) })
  get(@Param('id', new IdParamPipe('sweepId')) sweepId: string) {
    return this.sweeps.get(sweepId);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel every trial still queued or running; finished results are kept' })
  @ApiParam({ name: 'id', description: 'sweep id' })
  @ApiResponse({ status: 409, description: 'the sweep is no longer running' })
  cancel(@Param('id', new IdParamPipe('sweepId')) sweepId: string) {
    return this.sweeps.cancel(sweepId);
  }
}
