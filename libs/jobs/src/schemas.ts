import { z } from 'zod';
import { ID_PATTERN, ID_RULE, UnreadableObjectError, type MetricsFile } from '@dinoq/storage';

/*
 * The shapes that workers write, the CLI writes and reads, and the API reads back and documents:
 * ids, training metrics lines, evaluation options and reports, the attention export's index. One
 * schema per fact, so a field added on the writing side is seen (and typed) on every reading side.
 * Stored objects are checked against them and then used as stored, so fields a newer writer adds
 * pass through; fields an older writer lacked are optional.
 */

/** A run id, dataset name, eval id, ...: the same rule as libs/storage's `validateId`. */
export const idSchema = z.string().regex(ID_PATTERN, `must be ${ID_RULE}`);

// --- training metrics ----------------------------------------------------------------------------

/** One line of runs/<id>/metrics/<shard>.jsonl: one training step. */
export const stepMetricsLineSchema = z.object({
  step: z.number().int().min(0),
  epoch: z.number().int().min(0),
  loss: z.number(),
  lr: z.number(),
  weightDecay: z.number(),
  momentum: z.number().describe('teacher EMA momentum'),
  teacherTemp: z.number(),
  teacherEntropy: z.number().describe('mean entropy of the teacher outputs (nats); near 0 means collapse'),
  klTeacherStudent: z.number(),
  maxGradNorm: z.number(),
  imagesPerSecond: z.number(),
  stepMs: z.number(),
  dataWaitMs: z.number().describe('how long the step waited for its batch (0 when the pipeline kept ahead)'),
  dataMs: z.number().describe("the data pipeline's busy time (decode + multi-crop) for this step's batch"),
  dataThreads: z
    .number()
    .int()
    .min(0)
    .describe('augmentation threads (0: the main thread prepared the batch between steps)'),
  replicas: z.number().int().min(1),
  backend: z.string(),
  numTensors: z.number().int().min(0),
  dataMode: z
    .enum(['memory', 'streaming'])
    .optional()
    .describe('training data held decoded in memory or streamed from shards'),
  skippedImages: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('unusable images skipped (and replaced) so far in this job; absent when none'),
  skippedShards: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe(
      'shards that could not be fetched intact and were skipped so far in this job; absent when none',
    ),
  time: z.string().describe('when the step ended (ISO 8601)'),
});
export type StepMetricsLine = z.infer<typeof stepMetricsLineSchema>;

/** A stored line as read back: lines written before the data pipeline and replicas lack those fields. */
export const storedMetricsLineSchema = stepMetricsLineSchema.partial({
  dataMs: true,
  dataThreads: true,
  replicas: true,
});
export type StoredMetricsLine = z.infer<typeof storedMetricsLineSchema>;

/** The line for a step, from what the step loop reports (extra fields it carries are left out). */
export function stepMetricsLine(
  metrics: Omit<StepMetricsLine, 'dataThreads' | 'time'>,
  dataThreads: number,
  time = new Date(),
): StepMetricsLine {
  return {
    step: metrics.step,
    epoch: metrics.epoch,
    loss: metrics.loss,
    lr: metrics.lr,
    weightDecay: metrics.weightDecay,
    momentum: metrics.momentum,
    teacherTemp: metrics.teacherTemp,
    teacherEntropy: metrics.teacherEntropy,
    klTeacherStudent: metrics.klTeacherStudent,
    maxGradNorm: metrics.maxGradNorm,
    imagesPerSecond: metrics.imagesPerSecond,
    stepMs: metrics.stepMs,
    dataWaitMs: metrics.dataWaitMs,
    dataMs: metrics.dataMs,
    dataThreads,
    replicas: metrics.replicas,
    backend: metrics.backend,
    numTensors: metrics.numTensors,
    ...(metrics.dataMode ? { dataMode: metrics.dataMode } : {}),
    ...(metrics.skippedImages !== undefined ? { skippedImages: metrics.skippedImages } : {}),
    ...(metrics.skippedShards !== undefined ? { skippedShards: metrics.skippedShards } : {}),
    time: time.toISOString(),
  };
}

/** A stored line that could not be read: where it is and why. */
export interface SkippedMetricsLine {
  key: string;
  /** 1-based. */
  line: number;
  reason: string;
}

function issuesOf(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`)
    .join('; ');
}

/** The value if it fits the schema, returned as stored (with any fields the schema does not name). */
function checked<S extends z.ZodType>(
  schema: S,
  value: unknown,
): { value: z.output<S>; problem?: undefined } | { problem: string } {
  const parsed = schema.safeParse(value);
  return parsed.success ? { value: value as z.output<S> } : { problem: issuesOf(parsed.error) };
}

function parseLine(text: string): { value: StoredMetricsLine; problem?: undefined } | { problem: string } {
  try {
    return checked(storedMetricsLineSchema, JSON.parse(text));
  } catch {
    return { problem: 'not valid JSON' };
  }
}

/**
 * The lines of metrics files, in order. A line that is not JSON or not a metrics line is skipped
 * and reported, so one damaged line cannot hide the others.
 */
export function parseMetricsFiles(files: readonly MetricsFile[]): {
  lines: StoredMetricsLine[];
  skipped: SkippedMetricsLine[];
} {
  const lines: StoredMetricsLine[] = [];
  const skipped: SkippedMetricsLine[] = [];
  for (const { key, text } of files) {
    text.split('\n').forEach((raw, index) => {
      if (raw.trim() === '') return;
      const result = parseLine(raw);
      if (result.problem === undefined) lines.push(result.value);
      else skipped.push({ key, line: index + 1, reason: result.problem });
    });
  }
  return { lines, skipped };
}

// --- evaluations ---------------------------------------------------------------------------------

export const evaluationKindSchema = z.enum(['knn', 'linear']);

export const knnOptionsSchema = z
  .object({
    ks: z.array(z.number().int().min(1).max(1000)).min(1).max(8).default([10, 20, 100, 200]),
    temperature: z.number().positive().max(10).default(0.07),
    trainLimit: z.number().int().min(1).optional(),
    testLimit: z.number().int().min(1).optional(),
  })
  .strict();

export const linearOptionsSchema = z
  .object({
    epochs: z.number().int().min(1).max(1000).default(100),
    lastBlocks: z.number().int().min(1).max(12).default(4),
    avgPool: z.boolean().default(false),
    lr: z.number().positive().max(10).default(0.001),
    batchSize: z.number().int().min(1).max(4096).default(128),
    trainLimit: z.number().int().min(1).optional(),
    testLimit: z.number().int().min(1).optional(),
  })
  .strict();

export const knnScoreSchema = z.object({
  k: z.number().int().min(1),
  top1: z.number().describe('%'),
  top5: z.number().describe('%'),
});

export const probeEpochSchema = z.object({
  epoch: z.number().int().min(0),
  trainLoss: z.number(),
  top1: z.number(),
  top5: z.number(),
  lr: z.number(),
});

/** Per split, the samples an evaluation left out (unusable image, or a shard not fetched intact). */
export const skippedImagesSchema = z
  .object({ train: z.number().int().min(0), test: z.number().int().min(0) })
  .describe('unusable images left out of the evaluated samples, per split; absent when none');

export const linearReportSchema = z.object({
  top1: z.number().describe('best test top-1 over the epochs (%), as the reference reports it'),
  top5: z.number().describe('top-5 at the best epoch (%)'),
  bestEpoch: z.number().int().min(0),
  finalTop1: z.number(),
  finalTop5: z.number(),
  curve: z.array(probeEpochSchema),
  featureDim: z.number().int().min(1),
  settings: z.object(linearOptionsSchema.shape),
  trainImages: z.number().int().min(0),
  testImages: z.number().int().min(0),
  skippedImages: skippedImagesSchema.optional(),
});

export const probeScoreSchema = z.object({
  top1: z.number().describe('%'),
  top5: z.number().describe('%'),
});

/**
 * The scores a trained one is read against, on the same protocol (same images, k values and
 * temperature, same probe settings): the run's architecture at its seeded initialisation, and the
 * raw pixels of the evaluated crops. Computed once per dataset and protocol and shared by every
 * evaluation (datasets/<name>/baselines/).
 */
export const evaluationBaselinesSchema = z
  .object({
    knn: z
      .object({ randomInit: z.array(knnScoreSchema), rawPixels: z.array(knnScoreSchema) })
      .optional()
      .describe('weighted k-NN, one score per k as in `knn`'),
    linear: z
      .object({ randomInit: probeScoreSchema, rawPixels: probeScoreSchema })
      .optional()
      .describe('linear probe: best top-1 over the epochs and top-5 at that epoch, as `linear`'),
  })
  .describe('random-init and raw-pixel scores on the same protocol; absent in reports written before them');
export type EvaluationBaselines = z.infer<typeof evaluationBaselinesSchema>;

/** runs/<id>/evals/<evalId>.json */
export const evaluationReportSchema = z.object({
  evalId: idSchema,
  runId: idSchema,
  step: z.number().int().min(0),
  kinds: z.array(evaluationKindSchema),
  network: z.literal('teacher').describe("the reference protocol evaluates the teacher's backbone"),
  knn: z.array(knnScoreSchema).nullable(),
  knnSettings: z
    .object({
      ...knnOptionsSchema.shape,
      trainImages: z.number().int().min(0),
      testImages: z.number().int().min(0),
      skippedImages: skippedImagesSchema.optional(),
    })
    .nullable(),
  linear: linearReportSchema.nullable(),
  baselines: evaluationBaselinesSchema.optional(),
  scheduled: z.boolean(),
  durationMs: z.number().min(0),
  backend: z.string(),
  createdAt: z.string(),
});
export type LinearReport = z.infer<typeof linearReportSchema>;
export type EvaluationReport = z.infer<typeof evaluationReportSchema>;

// --- attention exports ---------------------------------------------------------------------------

const exportedImageSchema = z.object({
  name: z.string(),
  width: z.number().int().min(1).describe('size of the picture the model saw (the global crop size)'),
  height: z.number().int().min(1),
  files: z.object({
    input: z.string(),
    heads: z.array(z.string()),
    mean: z.string(),
    headMasks: z.array(z.string()),
    meanMask: z.string(),
    headOverlays: z.array(z.string()),
    overlay: z.string(),
  }),
  maskArea: z.object({ heads: z.array(z.number()), mean: z.number() }),
});

/** runs/<id>/attention/<exportId>/index.json, written after every PNG of the export. */
export const attentionIndexSchema = z.object({
  threshold: z.number(),
  patchSize: z.number().int().min(1),
  heads: z.number().int().min(1),
  imageSize: z.number().int().min(1),
  scale: z.number().int().min(1),
  images: z.array(exportedImageSchema),
  runId: idSchema,
  exportId: idSchema,
  step: z.number().int().min(0),
  network: z.literal('teacher'),
  backend: z.string(),
  createdAt: z.string(),
});
export type AttentionIndex = z.infer<typeof attentionIndexSchema>;

/**
 * An object read from storage, checked against its schema and returned as stored.
 * @throws UnreadableObjectError naming the key and every field that does not fit.
 */
export function parseStored<S extends z.ZodType>(schema: S, key: string, value: unknown): z.output<S> {
  const result = checked(schema, value);
  if (result.problem !== undefined) throw new UnreadableObjectError(key, result.problem);
  return result.value;
}
