import { z } from 'zod';
import { knnOptionsSchema, linearOptionsSchema } from '@dinoq/jobs';
import { checkpointStepSchema } from '../checkpoint-step';

export const evaluationKindsSchema = z
  .array(z.enum(['knn', 'linear']))
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
