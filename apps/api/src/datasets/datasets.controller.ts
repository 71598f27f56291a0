import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import { IdParamPipe } from '../http/id-param.pipe';
import { openApiSchema } from '../http/openapi';
import { ZodPipe } from '../http/zod.pipe';
import { importDatasetSchema, type ImportDatasetRequest } from './dataset.schemas';
import { DatasetsService } from './datasets.service';

@ApiTags('datasets')
@ApiBearerAuth()
@Controller('datasets')
export class DatasetsController {
  constructor(private readonly datasets: DatasetsService) {}

  @Post('import')
  @HttpCode(202)
  @ApiOperation({ summary: 'Queue an import job that writes datasets/<name>/ (shards, then the manifest)' })
  @ApiBody({ schema: openApiSchema(importDatasetSchema) })
  @ApiResponse({ status: 202, description: 'import job queued (jobId import-<name>)' })
  @ApiResponse({ status: 409, description: 'the dataset already exists' })
  import(@Body(new ZodPipe(importDatasetSchema)) body: ImportDatasetRequest) {
    return this.datasets.import(body);
  }

  @Get()
  @ApiOperation({ summary: 'Datasets with their classes and image counts per split' })
  list() {
    return this.datasets.list();
  }

  @Get(':name')
  @ApiOperation({ summary: 'One dataset' })
  @ApiParam({ name: 'name' })
  @ApiResponse({
    status: 404,
    description:
      'no manifest for that name; `import` holds its import job (state, failedReason) if one exists',
  })
  get(@Param('name', new IdParamPipe('name')) name: string) {
    return this.datasets.get(name);
  }

  @Get(':name/import')
  @ApiOperation({ summary: 'The import job of a dataset name: its state and, once failed, why' })
  @ApiParam({ name: 'name' })
  @ApiResponse({
    status: 404,
    description: 'no import job for that name (never queued, or already cleaned up)',
  })
  getImport(@Param('name', new IdParamPipe('name')) name: string) {
    return this.datasets.getImport(name);
  }
}
