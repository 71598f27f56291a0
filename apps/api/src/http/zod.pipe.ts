import { Injectable, type PipeTransform } from '@nestjs/common';
import type { z } from 'zod';

/** Validates a request body or query with a zod schema; a ZodError reaches the exception filter (400, every issue). */
@Injectable()
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(private readonly schema: S) {}

  transform(value: unknown): z.output<S> {
    return this.schema.parse(value ?? {});
  }
}
