import { NestFactory } from '@nestjs/core';
import type { LogLevel, Type } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { ApiDeps } from './api-options';
import { createApiModule } from './app.module';
import { apiKeyMiddleware } from './http/api-key.middleware';
import { ApiKeyVerifier } from './http/api-key-verifier';
import { JSON_BODY_LIMIT, UPLOAD_BODY_LIMIT, jsonBody } from './http/body-limits';
import { setupOpenApi } from './http/openapi';
import { publicRoutes } from './http/public-routes';
import { JobQueues } from './repositories/job-queues.repository';
import { dashboardHeaders } from './web/content-policy';
import { QUEUE_BOARD_PATH, queueBoard } from './web/queue-board';

export interface BootstrapOptions extends ApiDeps {
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** Nest log levels; false silences the framework logger. */
  logger?: false | LogLevel[];
}

export interface RunningApi {
  app: NestExpressApplication;
  url: string;
  close(): Promise<void>;
}

/**
 * Applies authentication, body limits and the docs routes to an application that has not started
 * yet. The key is checked first, so no body of an unauthenticated request is read or inflated.
 */
export function configureHttp(
  app: NestExpressApplication,
  verifier: ApiKeyVerifier,
  controllers: readonly Type[],
): void {
  app.disable('x-powered-by');
  // Answers change with every step of every run; hashing each body for an ETag buys no cache hits.
  app.disable('etag');
  app.use(apiKeyMiddleware(verifier, publicRoutes(controllers)));
  // The upload route gets its larger limit first; the general parser then skips parsed bodies.
  app.use('/runs/:id/attention', jsonBody(UPLOAD_BODY_LIMIT));
  app.use(jsonBody(JSON_BODY_LIMIT));
  setupOpenApi(app);
}

/** Builds the application without listening (supertest can drive `app.getHttpServer()`). */
export async function createApiApp(options: BootstrapOptions): Promise<NestExpressApplication> {
  const apiModule = createApiModule(options);
  const app = await NestFactory.create<NestExpressApplication>(apiModule, {
    bodyParser: false,
    logger: options.logger ?? ['log', 'warn', 'error'],
    abortOnError: false,
  });
  configureHttp(app, app.get(ApiKeyVerifier), apiModule.controllers ?? []);
  // After the API-key middleware, so the queue board needs a key or a session like every route.
  app.use(QUEUE_BOARD_PATH, dashboardHeaders, queueBoard(app.get(JobQueues)));
  return app;
}

export async function bootstrapApi(options: BootstrapOptions): Promise<RunningApi> {
  const app = await createApiApp(options);
  try {
    await app.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  } catch (error) {
    await app.close();
    throw error;
  }
  return { app, url: await app.getUrl(), close: () => app.close() };
}
