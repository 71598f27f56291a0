import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { presets } from '@dinoq/config';

@ApiTags('runs')
@ApiBearerAuth()
@Controller('presets')
export class PresetsController {
  @Get()
  @ApiOperation({
    summary:
      'The named run configs POST /runs accepts as `preset`: each is merged over the defaults, and the ' +
      "request's `config` over it",
  })
  list() {
    return Object.entries(presets).map(([name, config]) => ({ name, config }));
  }
}
