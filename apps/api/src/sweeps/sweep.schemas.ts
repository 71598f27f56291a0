import { z } from 'zod';
import { sweepReportSchema } from '@dinoq/jobs';

export { createSweepSchema, type CreateSweepRequest } from '@dinoq/jobs';

/** GET /sweeps/:id: the sweep's report as derived now, with what it was created with. */
export const sweepViewSchema = sweepReportSchema.extend({
  dataset: z.string(),
  preset: z.string().nullable(),
  createdAt: z.string(),
  rungFractions: z.array(z.number()).describe('rung i as a fraction of the trial budget'),
});

export const sweepListSchema = z.object({
  sweeps: z.array(
    z.object({ sweepId: z.string(), status: z.string(), trials: z.number().int(), createdAt: z.string() }),
  ),
});
