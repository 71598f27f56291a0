import { Inject, Injectable } from '@nestjs/common';
import { SweepRepository } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions } from '../api-options';

/** Sweep records and reports under sweeps/<id>/: the only code of the API that reads or writes them. */
@Injectable()
export class SweepRecords extends SweepRepository {
  constructor(@Inject(API_OPTIONS) options: ApiOptions) {
    super(options.store);
  }
}
