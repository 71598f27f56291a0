import { Body, Controller, Delete, Get, HttpCode, Param, Post, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { IdParamPipe } from '../http/id-param.pipe';
import { openApiSchema } from '../http/openapi';
import { ZodPipe } from '../http/zod.pipe';
import { createScheduleSchema, type CreateScheduleRequest } from './schedule.schemas';
import { SchedulesService } from './schedules.service';

@ApiTags('schedules')
@ApiBearerAuth()
@Controller('schedules')
export class SchedulesController {
  constructor(private readonly schedules: SchedulesService) {}

  @Post()
  @ApiOperation({ summary: 'Create or update a periodic evaluation (every N seconds or a cron pattern)' })
  @ApiBody({ schema: openApiSchema(createScheduleSchema) })
  @ApiResponse({ status: 201, description: 'schedule created' })
  @ApiResponse({ status: 200, description: 'an existing schedule with this id was updated' })
  async upsert(
    @Body(new ZodPipe(createScheduleSchema)) body: CreateScheduleRequest,
    @Res({ passthrough: true }) response: Response,
  ) {
    const { created, schedule } = await this.schedules.upsert(body);
    response.status(created ? 201 : 200);
    return schedule;
  }

  @Get()
  @ApiOperation({ summary: 'Every schedule with its next run time' })
  list() {
    return this.schedules.list();
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Remove a schedule' })
  @ApiParam({ name: 'id', description: 'schedule id' })
  @ApiResponse({ status: 404, description: 'no schedule with this id' })
  async remove(@Param('id', new IdParamPipe('scheduleId')) scheduleId: string): Promise<void> {
    await this.schedules.remove(scheduleId);
  }
}
