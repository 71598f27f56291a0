import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { IdParamPipe } from '../http/id-param.pipe';
import { openApiSchema } from '../http/openapi';
import { ZodPipe } from '../http/zod.pipe';
import {
  attentionViewSchema,
  createAttentionSchema,
  type AttentionView,
  type CreateAttentionRequest,
} from './attention.schemas';
import { AttentionService } from './attention.service';

@ApiTags('attention')
@ApiBearerAuth()
@Controller('runs/:id/attention')
export class AttentionController {
  constructor(private readonly attention: AttentionService) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Queue last-layer attention maps for dataset images or uploaded PNG/JPEG images' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiBody({ schema: openApiSchema(createAttentionSchema) })
  @ApiResponse({ status: 202, description: 'export queued; poll GET .../attention/<exportId>' })
  @ApiResponse({
    status: 400,
    description: 'bad index or split, or an upload that is not a PNG/JPEG of at most 1 MiB',
  })
  @ApiResponse({ status: 413, description: 'request body larger than 20 MB' })
  create(
    @Param('id', new IdParamPipe('runId')) runId: string,
    @Body(new ZodPipe(createAttentionSchema)) body: CreateAttentionRequest,
  ) {
    return this.attention.create(runId, body);
  }

  @Get()
  @ApiOperation({ summary: 'Every attention export of the run with its status, newest first' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiResponse({ status: 200, schema: openApiSchema(z.array(attentionViewSchema)) })
  list(@Param('id', new IdParamPipe('runId')) runId: string): Promise<AttentionView[]> {
    return this.attention.list(runId);
  }

  @Get(':exportId')
  @ApiOperation({ summary: 'Export status, with index.json once the maps are written' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiParam({ name: 'exportId' })
  @ApiResponse({ status: 200, schema: openApiSchema(attentionViewSchema) })
  @ApiResponse({ status: 422, description: 'the stored index.json is not an export index; `key` names it' })
  get(
    @Param('id', new IdParamPipe('runId')) runId: string,
    @Param('exportId', new IdParamPipe('exportId')) exportId: string,
  ): Promise<AttentionView> {
    return this.attention.get(runId, exportId);
  }
}
