import { z } from 'zod';
import { MAX_SLICES, presetNames } from '@dinoq/config';
import { DEFAULT_RUN_RETRY_BUDGET, decodeRunCursor, runStatuses, runSummarySchema } from '@dinoq/jobs';

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
    retryBudget: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(DEFAULT_RUN_RETRY_BUDGET)
      .describe(
        'new attempts of a shard whose job failed for good (its BullMQ attempts spent, or its worker ' +
          'killed repeatedly) before the run fails with the reason; 0 fails at the first such shard',
      ),
  })
  .strict();

export type CreateRunRequest = z.infer<typeof createRunSchema>;

/** POST /runs/:id/resize: the slice count of the run's next rounds. */
export const resizeRunSchema = z
  .object({
    slices: z
      .number()
      .int()
      .min(1)
      .max(MAX_SLICES)
      .describe(
        'slices of every round that starts from now on (the round in flight keeps its own); one slice ' +
          'trains like sequential shards',
      ),
  })
  .strict();

export type ResizeRunRequest = z.infer<typeof resizeRunSchema>;

/** Unknown query parameters (cache busters and the like) are ignored. */
export const metricsQuerySchema = z.object({
  fromStep: z.coerce.number().int().min(0).optional(),
});

export const MAX_RUNS_PER_PAGE = 500;

/** GET /runs: one page of run summaries from the index. */
export const listRunsQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_RUNS_PER_PAGE)
    .default(50)
    .describe(`runs per page, 1-${MAX_RUNS_PER_PAGE}`),
  cursor: z
    .string()
    .refine((cursor) => decodeRunCursor(cursor) !== null, 'not a cursor returned by GET /runs')
    .optional()
    .describe('`nextCursor` of the previous page; absent for the first page'),
  status: z.enum(runStatuses).optional().describe('only runs in this status'),
  order: z.enum(['asc', 'desc']).default('asc').describe('oldest first (asc) or newest first (desc)'),
});

export type ListRunsQuery = z.infer<typeof listRunsQuerySchema>;

export const runListSchema = z.object({
  runs: z.array(runSummarySchema),
  nextCursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last page'),
  total: z.number().int().min(0).describe('runs matching the status filter'),
});
