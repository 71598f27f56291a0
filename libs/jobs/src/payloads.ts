import { z } from 'zod';
import { QueueName } from './queues';
import { evaluationKindSchema, idSchema as id, knnOptionsSchema, linearOptionsSchema } from './schemas';

/** One bounded slice of a run: train from the newest commit up to `toStep`, then commit. */
export const trainShardJobSchema = z.object({
  runId: id,
  shard: z.number().int().min(0),
  fromStep: z.number().int().min(0),
  toStep: z.number().int().min(1),
});

/** The steps of one DiLoCo round: [fromStep, toStep) trained by `slices` slices, then merged. */
const roundFields = {
  runId: id,
  fromStep: z.number().int().min(0),
  toStep: z.number().int().min(1),
  slices: z.number().int().min(1),
};

/** Slice `slice` of a round: train its lane of the round's steps from the round's start, commit the result. */
export const trainSliceJobSchema = z
  .object({ ...roundFields, slice: z.number().int().min(0) })
  .refine((job) => job.slice < job.slices, { message: 'must be below slices', path: ['slice'] });

/** The parent of a round's flow: merge the slices' results into the next checkpoint, start the next round. */
export const mergeRoundJobSchema = z.object(roundFields);

export const evaluateJobSchema = z.object({
  runId: id,
  evalId: id,
  /** A committed step, or null for the newest commit at the time the job runs. */
  step: z.number().int().min(0).nullable(),
  kinds: z.array(evaluationKindSchema).min(1),
  knn: knnOptionsSchema.optional(),
  linear: linearOptionsSchema.optional(),
  /** Set by job schedulers; results also go to the run's evaluation history. */
  scheduled: z.boolean().default(false),
});

export const attentionJobSchema = z.object({
  runId: id,
  exportId: id,
  step: z.number().int().min(0).nullable(),
  images: z.union([
    z.object({ split: z.string().min(1).max(32), indices: z.array(z.number().int().min(0)).min(1).max(64) }),
    z.object({ uploadKeys: z.array(z.string().min(1)).min(1).max(16) }),
  ]),
  threshold: z.number().gt(0).lt(1).default(0.6),
});

export const importJobSchema = z.object({
  datasetName: id,
  source: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('fashion-mnist'), limit: z.number().int().min(1).optional() }),
    z.object({ kind: z.literal('image-folder'), prefix: z.string().min(1).max(512) }),
    z.object({ kind: z.literal('webdataset'), prefix: z.string().min(1).max(512) }),
  ]),
});

/** Evaluation of every active run's newest checkpoint, fired by a job scheduler. */
export const scheduledSweepJobSchema = z.object({
  scheduleId: id,
  runId: id.nullable(),
  kinds: z.array(evaluationKindSchema).min(1),
  knn: knnOptionsSchema.optional(),
  linear: linearOptionsSchema.optional(),
});

export type TrainShardJob = z.infer<typeof trainShardJobSchema>;
export type TrainSliceJob = z.infer<typeof trainSliceJobSchema>;
export type MergeRoundJob = z.infer<typeof mergeRoundJobSchema>;
export type EvaluateJob = z.infer<typeof evaluateJobSchema>;
export type AttentionJob = z.infer<typeof attentionJobSchema>;
export type ImportJob = z.infer<typeof importJobSchema>;
export type ScheduledSweepJob = z.infer<typeof scheduledSweepJobSchema>;

/** Job names per queue with their payload schemas: the type-checked catalogue. */
export const jobCatalogue = {
  'train-shard': { queues: [QueueName.TrainCpu, QueueName.TrainGpu], schema: trainShardJobSchema },
  'train-slice': { queues: [QueueName.TrainCpu, QueueName.TrainGpu], schema: trainSliceJobSchema },
  'merge-round': { queues: [QueueName.TrainCpu, QueueName.TrainGpu], schema: mergeRoundJobSchema },
  evaluate: { queues: [QueueName.EvaluateCpu, QueueName.EvaluateGpu], schema: evaluateJobSchema },
  'evaluate-sweep': {
    queues: [QueueName.EvaluateCpu, QueueName.EvaluateGpu],
    schema: scheduledSweepJobSchema,
  },
  attention: { queues: [QueueName.Attention], schema: attentionJobSchema },
  import: { queues: [QueueName.Import], schema: importJobSchema },
} as const;

export type JobName = keyof typeof jobCatalogue;
export type JobPayload<N extends JobName> = z.infer<(typeof jobCatalogue)[N]['schema']>;

/** Validates a payload read from a queue; a bad one fails the job with the field named. */
export function parseJob<N extends JobName>(name: N, data: unknown): JobPayload<N> {
  const r = jobCatalogue[name].schema.safeParse(data);
  if (!r.success) {
    const reasons = r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new Error(`invalid ${name} job payload: ${reasons.join('; ')}`);
  }
  return r.data as JobPayload<N>;
}
