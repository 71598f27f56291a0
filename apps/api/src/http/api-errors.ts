import {
  BadRequestException,
  ConflictException,
  NotFoundException,
  PayloadTooLargeException,
} from '@nestjs/common';

/*
 * The few HTTP errors services raise. Bodies carry the offending field where there is one, so a
 * client can point at it.
 */

export function notFound(message: string, field?: string): NotFoundException {
  return new NotFoundException({ statusCode: 404, error: 'Not Found', message, ...(field ? { field } : {}) });
}

export function conflict(message: string): ConflictException {
  return new ConflictException({ statusCode: 409, error: 'Conflict', message });
}

export function badRequest(message: string, field?: string, reasons?: string[]): BadRequestException {
  return new BadRequestException({
    statusCode: 400,
    error: 'Bad Request',
    message,
    ...(field ? { field } : {}),
    ...(reasons ? { reasons } : {}),
  });
}

export function payloadTooLarge(message: string, field: string): PayloadTooLargeException {
  return new PayloadTooLargeException({ statusCode: 413, error: 'Payload Too Large', message, field });
}
