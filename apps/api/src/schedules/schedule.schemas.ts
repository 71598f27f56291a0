import { z } from 'zod';
import { knnOptionsSchema, linearOptionsSchema } from '@dinoq/jobs';
import { evaluationKindsSchema } from '../evaluations/evaluation.schemas';
import { cronPatternProblem } from './cron-pattern';

/**
 * The shortest period of a schedule, for `every` and between a cron pattern's firings alike. BullMQ
 * creates at most one pending job per scheduler, so a short period cannot pile up work, but every
 * firing still costs a sweep over the runs.
 */
export const MIN_EVERY_SECONDS = 10;

function knownTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const createScheduleSchema = z
  .object({
    scheduleId: z
      .string()
      .optional()
      .describe('generated from the request when absent, so repeating it is idempotent'),
    runId: z.string().optional().describe('omit to evaluate every active run'),
    every: z.number().int().min(MIN_EVERY_SECONDS).optional().describe('period in seconds'),
    cron: z
      .string()
      .min(1)
      .max(128)
      .optional()
      .describe(
        `cron pattern of 5 fields, e.g. "0 3 * * *", or 6 with seconds first; firings at least ${MIN_EVERY_SECONDS} s apart`,
      ),
    tz: z.string().min(1).max(64).optional().describe('IANA time zone of the cron pattern (default UTC)'),
    kinds: evaluationKindsSchema,
    knn: knnOptionsSchema.optional(),
    linear: linearOptionsSchema.optional(),
  })
  .strict()
  .superRefine((request, ctx) => {
    if ((request.every === undefined) === (request.cron === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['every'],
        message: 'give exactly one of "every" (seconds) or "cron"',
      });
    }
    if (request.tz !== undefined) {
      if (request.cron === undefined)
        ctx.addIssue({ code: 'custom', path: ['tz'], message: 'only applies to "cron"' });
      if (!knownTimeZone(request.tz))
        ctx.addIssue({ code: 'custom', path: ['tz'], message: `unknown time zone "${request.tz}"` });
    }
    if (request.cron !== undefined && (request.tz === undefined || knownTimeZone(request.tz))) {
      const problem = cronPatternProblem(request.cron, request.tz ?? 'UTC', MIN_EVERY_SECONDS);
      if (problem !== null) ctx.addIssue({ code: 'custom', path: ['cron'], message: problem });
    }
  });

export type CreateScheduleRequest = z.infer<typeof createScheduleSchema>;
