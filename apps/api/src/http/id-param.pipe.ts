import { Injectable, type PipeTransform } from '@nestjs/common';
import { validateId } from '@dinoq/storage';

/** Validates a path segment as an id; InvalidIdError (400 naming the field) otherwise. */
@Injectable()
export class IdParamPipe implements PipeTransform<unknown, string> {
  constructor(private readonly field: string) {}

  transform(value: unknown): string {
    return validateId(this.field, value);
  }
}
