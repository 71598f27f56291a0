import { z } from 'zod';
import {
  evaluationKindSchema,
  evaluationReportSchema,
  knnOptionsSchema,
  linearOptionsSchema,
} from '@dinoq/jobs';
import { checkpointStepSchema } from '../checkpoint-step';

export const evaluationKindsSchema = z
  .array(evaluationKindSchema)
  .min(1)
  .refine((kinds) => new Set(kinds).size === kinds.length, 'must not repeat a kind');

export const createEvaluationSchema = z
  .object({
    kinds: evaluationKindsSchema,
    step: checkpointStepSchema,
    knn: knnOptionsSchema.optional(),
    linear: linearOptionsSchema.optional(),
  })
  .strict();

export type CreateEvaluationRequest = z.infer<typeof createEvaluationSchema>;

/** One evaluation as GET answers it: its stored report once completed, else its job's state. */
export const evaluationViewSchema = z.object({
  evalId: z.string(),
  status: z
    .string()
    .describe('completed; a job state (waiting, active, delayed, prioritized, failed); or unreadable'),
  step: z.number().int().min(0).nullable(),
  kinds: z.array(evaluationKindSchema),
  jobId: z.string().nullable(),
  error: z.string().nullable().describe('why the job failed, or why the stored report cannot be read'),
  report: evaluationReportSchema.nullable(),
  summary: z
    .array(z.string())
    .describe(
      'each score beside its baselines on the same protocol, e.g. "k-NN k=20 top-1 61.2 % (random 49.3 %, ' +
        'pixels 81.1 %)"; empty until the report exists',
    ),
});

export type EvaluationView = z.infer<typeof evaluationViewSchema>;
