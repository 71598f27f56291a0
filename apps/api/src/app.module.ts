import 'reflect-metadata';
import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { API_OPTIONS, resolveApiOptions, type ApiDeps, type ApiOptions } from './api-options';
import { ArtifactsController } from './artifacts/artifacts.controller';
import { ArtifactsService } from './artifacts/artifacts.service';
import { AttentionController } from './attention/attention.controller';
import { AttentionService } from './attention/attention.service';
import { DatasetsController } from './datasets/datasets.controller';
import { DatasetsService } from './datasets/datasets.service';
import { EvaluationsController } from './evaluations/evaluations.controller';
import { EvaluationsService } from './evaluations/evaluations.service';
import { EventsController } from './live/events.controller';
import { HealthController } from './health/health.controller';
import { HealthService } from './health/health.service';
import { ServingState } from './health/serving-state';
import { ApiExceptionFilter } from './http/api-exception.filter';
import { ApiKeyGuard } from './http/api-key.guard';
import { ApiKeyVerifier } from './http/api-key-verifier';
import { MetricsController } from './metrics/metrics.controller';
import { MetricsService } from './metrics/metrics.service';
import { PresetsController } from './presets/presets.controller';
import { ReconcileService } from './reconcile/reconcile.service';
import { Datasets } from './repositories/datasets.repository';
import { JobQueues } from './repositories/job-queues.repository';
import { QueueEventsRepository } from './repositories/queue-events.repository';
import { RedisRepository } from './repositories/redis.repository';
import { RunFiles } from './repositories/run-files.repository';
import { RunIndexRepository } from './repositories/run-index.repository';
import { RunRecords } from './repositories/run-records.repository';
import { AdmissionService } from './runs/admission.service';
import { RunLifecycleService } from './runs/run-lifecycle.service';
import { RunsController } from './runs/runs.controller';
import { RunsService } from './runs/runs.service';
import { SchedulesController } from './schedules/schedules.controller';
import { SchedulesService } from './schedules/schedules.service';
import { SweepRecords } from './repositories/sweep-records.repository';
import { SweepControllerService } from './sweeps/sweep-controller.service';
import { SweepsController } from './sweeps/sweeps.controller';
import { SweepsService } from './sweeps/sweeps.service';
import { SessionController } from './session/session.controller';
import { WebController } from './web/web.controller';

@Module({})
export class ApiModule {}

/** The API's root module over injected storage and Redis settings (tests pass real test instances). */
export function createApiModule(deps: ApiDeps): DynamicModule {
  const options = resolveApiOptions(deps);
  return {
    module: ApiModule,
    controllers: [
      DatasetsController,
      RunsController,
      EvaluationsController,
      AttentionController,
      SchedulesController,
      SweepsController,
      ArtifactsController,
      HealthController,
      MetricsController,
      PresetsController,
      SessionController,
      EventsController,
      WebController,
    ],
    providers: [
      { provide: API_OPTIONS, useValue: options },
      {
        provide: ApiKeyVerifier,
        useFactory: (resolved: ApiOptions) => new ApiKeyVerifier(resolved.apiKeys, resolved.authDisabled),
        inject: [API_OPTIONS],
      },
      { provide: APP_GUARD, useClass: ApiKeyGuard },
      { provide: APP_FILTER, useClass: ApiExceptionFilter },
      RedisRepository,
      JobQueues,
      QueueEventsRepository,
      RunRecords,
      RunIndexRepository,
      Datasets,
      RunFiles,
      DatasetsService,
      RunsService,
      AdmissionService,
      RunLifecycleService,
      EvaluationsService,
      AttentionService,
      SchedulesService,
      SweepRecords,
      SweepsService,
      SweepControllerService,
      ArtifactsService,
      ServingState,
      HealthService,
      MetricsService,
      ReconcileService,
    ],
  };
}
