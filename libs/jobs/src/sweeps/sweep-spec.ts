import { z } from 'zod';
import { presetNames } from '@dinoq/config';
import { idSchema } from '../schemas';

/*
 * What a sweep is asked to do (POST /sweeps) and what is stored of it (sweeps/<id>/sweep.json):
 * a base config, a search space over config paths, the metric that ranks trials, the budget of each
 * trial and early stopping by successive halving at evaluation rungs.
 */

/** The longest sweep id: trial run ids append `-t<index>` and must stay within the 64 of an id. */
export const MAX_SWEEP_ID_LENGTH = 48;
/** Trials one sweep may create. */
export const MAX_SWEEP_TRIALS = 256;

const jsonValue: z.ZodType<unknown> = z.union([
  z.number(),
  z.string(),
  z.boolean(),
  z.null(),
  z.array(z.unknown()),
]);

/** A dotted run-config path, e.g. `optim.lr`. */
const configPathSchema = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/, 'must be a dotted config path such as optim.lr');

export const valuesDimensionSchema = z
  .object({
    values: z.array(jsonValue).min(1).max(MAX_SWEEP_TRIALS).describe('the values to try, in order'),
  })
  .strict();

export const rangeDimensionSchema = z
  .object({
    min: z.number(),
    max: z.number(),
    log: z.boolean().default(false).describe('sample (or space grid points) evenly in log space; min > 0'),
    integer: z.boolean().default(false).describe('round to whole numbers'),
    count: z
      .number()
      .int()
      .min(2)
      .max(MAX_SWEEP_TRIALS)
      .optional()
      .describe('grid points from min to max (both included); grid search only'),
  })
  .strict()
  .superRefine((range, ctx) => {
    if (!(range.min <= range.max)) ctx.addIssue({ code: 'custom', path: ['max'], message: 'must be ≥ min' });
    if (range.log && !(range.min > 0))
      ctx.addIssue({ code: 'custom', path: ['min'], message: 'must be > 0 on a log scale' });
  });

export const dimensionSchema = z.union([valuesDimensionSchema, rangeDimensionSchema]);
export type Dimension = z.infer<typeof dimensionSchema>;
export type RangeDimension = z.infer<typeof rangeDimensionSchema>;

export const searchSpaceSchema = z
  .object({
    kind: z.enum(['grid', 'random']).describe('every combination, or `budget.trials` seeded samples'),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0)
      .describe('random search: the same seed draws the same trials'),
    parameters: z
      .record(configPathSchema, dimensionSchema)
      .refine((parameters) => Object.keys(parameters).length > 0, 'name at least one config path')
      .describe('config path → { values: [...] } or { min, max, log?, integer?, count? (grid) }'),
  })
  .strict();
export type SearchSpace = z.infer<typeof searchSpaceSchema>;

export const sweepMetricSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('knn'),
      k: z.number().int().min(1).max(1000).default(20),
      temperature: z.number().positive().max(10).default(0.07),
      bankImages: z.number().int().min(1).optional().describe('memory bank: the first n train images'),
      queryImages: z.number().int().min(1).optional().describe('queries: the first n test images'),
    })
    .strict()
    .describe("weighted k-NN top-1 (%) of the teacher's features; higher is better"),
  z
    .object({
      kind: z.literal('loss'),
      window: z.number().int().min(1).max(10000).default(10).describe('steps averaged before each rung'),
    })
    .strict()
    .describe('mean training loss over the steps before each rung; lower is better'),
]);
export type SweepMetric = z.infer<typeof sweepMetricSchema>;

export const sweepBudgetSchema = z
  .object({
    trials: z
      .number()
      .int()
      .min(1)
      .max(MAX_SWEEP_TRIALS)
      .optional()
      .describe('random search: how many trials; grid search: at most this many points (default all)'),
    steps: z.number().int().min(1).optional().describe('optimizer steps per trial'),
    images: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('images per trial (steps = images / batch size, rounded up): fair across batch sizes'),
    minutes: z
      .number()
      .positive()
      .max(7 * 24 * 60)
      .optional()
      .describe(
        "training minutes per trial: steps = minutes × flopsPerSecond / the trial config's FLOPs per step " +
          '(rounded down), so a larger model gets fewer steps; fair across model sizes',
      ),
    flopsPerSecond: z
      .number()
      .positive()
      .optional()
      .describe(
        'with minutes: the training speed to convert them with (matmul FLOP/s); default: the slowest live ' +
          "worker's measured speed on the sweep's device queue, recorded in the sweep when it is created",
      ),
  })
  .strict()
  .refine(
    (budget) => [budget.steps, budget.images, budget.minutes].filter((v) => v !== undefined).length === 1,
    {
      message: 'give exactly one of "steps", "images" or "minutes"',
    },
  )
  .refine((budget) => budget.flopsPerSecond === undefined || budget.minutes !== undefined, {
    message: '"flopsPerSecond" goes with "minutes"',
    path: ['flopsPerSecond'],
  });
export type SweepBudget = z.infer<typeof sweepBudgetSchema>;

export const earlyStoppingSchema = z
  .object({
    rungs: z
      .number()
      .int()
      .min(1)
      .max(8)
      .default(1)
      .describe('evaluation points: rung i of R at budget / eta^(R-1-i); the last is the full budget'),
    eta: z.number().int().min(2).max(8).default(2).describe('keep the best 1/eta at every rung'),
    mode: z
      .enum(['sync', 'async'])
      .default('sync')
      .describe(
        'sync: successive halving, a rung is decided once every trial still in it has its result; ' +
          'async: ASHA, each result is ranked against those already at its rung when it arrives',
      ),
  })
  .strict();
export type EarlyStopping = z.infer<typeof earlyStoppingSchema>;

export const createSweepSchema = z
  .object({
    sweepId: idSchema
      .max(MAX_SWEEP_ID_LENGTH)
      .optional()
      .describe(`up to ${MAX_SWEEP_ID_LENGTH} of a-z, 0-9, "-", "_"; generated when absent`),
    dataset: z.string().describe('name of an imported dataset'),
    preset: z.enum(presetNames as [string, ...string[]]).optional(),
    config: z
      .record(z.string(), z.unknown())
      .optional()
      .describe('base overrides merged over the preset; the search space is merged over them'),
    device: z.enum(['gpu', 'cpu', 'any']).default('any'),
    space: searchSpaceSchema,
    metric: sweepMetricSchema,
    budget: sweepBudgetSchema,
    earlyStopping: earlyStoppingSchema.default(earlyStoppingSchema.parse({})),
  })
  .strict();
export type CreateSweepRequest = z.infer<typeof createSweepSchema>;

export const sweepStatuses = ['running', 'completed', 'failed', 'cancelled'] as const;
export type SweepStatus = (typeof sweepStatuses)[number];

/** The overrides of one trial: config path → value. */
export const trialPointSchema = z.record(z.string(), jsonValue);
export type TrialPoint = z.infer<typeof trialPointSchema>;

/** sweeps/<id>/sweep.json: what the sweep was created with, its trials and its status. */
export const sweepRecordSchema = createSweepSchema.extend({
  sweepId: idSchema,
  trials: z.array(z.object({ runId: idSchema, point: trialPointSchema })),
  status: z.enum(sweepStatuses),
  cancelRequested: z.boolean().default(false),
  error: z.string().nullable().default(null),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type SweepRecord = z.infer<typeof sweepRecordSchema>;

/** Trial i's run id: the sweep's id and the trial's index, so re-creating a trial finds its run. */
export function trialRunId(sweepId: string, index: number): string {
  return `${sweepId}-t${index}`;
}

/** The evaluation of a trial at rung `rung`: one id per rung, so asking twice names one evaluation. */
export function rungEvalId(rung: number): string {
  return `sweep-rung-${rung}`;
}
