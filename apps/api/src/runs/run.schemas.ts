import { z } from 'zod';
import { presetNames } from '@dinoq/config';

export const createRunSchema = z
  .object({
    runId: z.string().optional().describe('1-64 of a-z, 0-9, "-", "_"; generated when absent'),
    dataset: z.string().describe('name of an imported dataset'),
    preset: z.enum(presetNames as [string, ...string[]]).optional(),
    config: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('overrides merged over the preset (or the defaults), e.g. {"train":{"epochs":5}}'),
    device: z.enum(['gpu', 'cpu', 'any']).default('any'),
  })
  .strict();

export type CreateRunRequest = z.infer<typeof createRunSchema>;

/** Unknown query parameters (cache busters and the like) are ignored. */
export const metricsQuerySchema = z.object({
  fromStep: z.coerce.number().int().min(0).optional(),
});
