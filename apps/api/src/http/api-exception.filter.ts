import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { ZodError } from 'zod';
import { ConfigError } from '@dinoq/config';
import { RunNotFoundError, RunWriteConflictError } from '@dinoq/jobs';
import { InvalidIdError, NotFoundError, UnreadableObjectError } from '@dinoq/storage';

export interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
  field?: string;
  reasons?: string[];
  /** The storage key of a record that cannot be read. */
  key?: string;
}

function zodReasons(error: ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`);
}

/** Maps domain errors to HTTP answers; anything unexpected is logged and answered with a bare 500. */
export function errorBody(exception: unknown): ErrorBody {
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const response = exception.getResponse();
    if (typeof response === 'object' && response !== null) {
      const body = response as Partial<ErrorBody> & { message?: unknown };
      const message = Array.isArray(body.message)
        ? body.message.join('; ')
        : String(body.message ?? exception.message);
      return { ...body, statusCode: status, error: body.error ?? exception.name, message } as ErrorBody;
    }
    return { statusCode: status, error: exception.name, message: String(response) };
  }
  if (exception instanceof ConfigError) {
    return {
      statusCode: 400,
      error: 'Bad Request',
      message: 'invalid run config',
      reasons: exception.reasons,
    };
  }
  if (exception instanceof ZodError) {
    return {
      statusCode: 400,
      error: 'Bad Request',
      message: 'invalid request',
      reasons: zodReasons(exception),
    };
  }
  if (exception instanceof InvalidIdError) {
    return { statusCode: 400, error: 'Bad Request', message: exception.message, field: exception.field };
  }
  if (exception instanceof RunNotFoundError) {
    return { statusCode: 404, error: 'Not Found', message: exception.message, field: 'runId' };
  }
  if (exception instanceof UnreadableObjectError) {
    const run = /^runs\/([^/]+)\/run\.json$/.exec(exception.key);
    const hint = run
      ? `; POST /runs/${run[1]}/repair rebuilds it, POST /runs/${run[1]}/cancel stops the run`
      : '';
    return {
      statusCode: 422,
      error: 'Unprocessable Entity',
      message: `${exception.message}${hint}`,
      key: exception.key,
    };
  }
  if (exception instanceof RunWriteConflictError) {
    return { statusCode: 409, error: 'Conflict', message: exception.message, field: 'runId' };
  }
  if (exception instanceof NotFoundError) {
    return { statusCode: 404, error: 'Not Found', message: exception.message };
  }
  return { statusCode: 500, error: 'Internal Server Error', message: 'internal error' };
}

@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('ApiExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const body = errorBody(exception);
    if (body.statusCode >= 500) {
      this.logger.error(
        exception instanceof Error ? (exception.stack ?? exception.message) : String(exception),
      );
    }
    host.switchToHttp().getResponse<Response>().status(body.statusCode).json(body);
  }
}
