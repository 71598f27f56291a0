import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiTags } from '@nestjs/swagger';
import { IdParamPipe } from '../http/id-param.pipe';
import { ArtifactsService } from './artifacts.service';

@ApiTags('artifacts')
@ApiBearerAuth()
@Controller('runs/:id/artifacts')
export class ArtifactsController {
  constructor(private readonly artifacts: ArtifactsService) {}

  @Get()
  @ApiOperation({
    summary: 'Checkpoints, exported backbone, reports and attention files with presigned URLs',
  })
  @ApiParam({ name: 'id', description: 'run id' })
  list(@Param('id', new IdParamPipe('runId')) runId: string) {
    return this.artifacts.list(runId);
  }

  @Get('url')
  @ApiOperation({ summary: 'A presigned GET URL for one object of the run' })
  @ApiParam({ name: 'id', description: 'run id' })
  @ApiQuery({ name: 'key', description: 'path inside runs/<id>/, e.g. checkpoints/000000050/COMMITTED' })
  @ApiResponse({ status: 400, description: 'the key leaves the run prefix' })
  @ApiResponse({ status: 404, description: 'no such object' })
  url(@Param('id', new IdParamPipe('runId')) runId: string, @Query('key') key: unknown) {
    return this.artifacts.url(runId, key);
  }
}
