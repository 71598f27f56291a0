import type { NextFunction, Request, Response } from 'express';
import { NestFactory } from '@nestjs/core';
import type { LogLevel } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { ApiDeps } from './api-options';
import { createApiModule } from './app.module';
import { ApiKeyVerifier } from './http/api-key-verifier';
import { JSON_BODY_LIMIT, UPLOAD_BODY_LIMIT, jsonBody } from './http/body-limits';
import { setupOpenApi } from './http/openapi';

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

/** Applies body limits, the docs routes and their auth to an application that has not started yet. */
export function configureHttp(app: NestExpressApplication, verifier: ApiKeyVerifier): void {
  app.disable('x-powered-by');
  // The upload route gets its larger limit first; the general parser then skips parsed bodies.
  app.use('/runs/:id/attention', jsonBody(UPLOAD_BODY_LIMIT));
  app.use(jsonBody(JSON_BODY_LIMIT));
  // Swagger UI is served outside Nest's router, so the global guard does not see it.
  const docsAuth = (req: Request, res: Response, next: NextFunction) => {
    const outcome = verifier.verify(req.headers.authorization);
    if (outcome.ok) return next();
    res.setHeader('WWW-Authenticate', 'Bearer realm="dinoq"');
    res.status(401).json({ statusCode: 401, error: 'Unauthorized', message: outcome.reason });
  };
  app.use(['/docs', '/docs-json'], docsAuth);
  setupOpenApi(app);
}

/** Builds the application without listening (supertest can drive `app.getHttpServer()`). */
export async function createApiApp(options: BootstrapOptions): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(createApiModule(options), {
    bodyParser: false,
    logger: options.logger ?? ['log', 'warn', 'error'],
    abortOnError: false,
  });
  configureHttp(app, app.get(ApiKeyVerifier));
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
