import { z } from 'zod';

/**
 * One typed schema for a DINO run. Every default is the value of the reference
 * implementation (spec §9) unless a comment says otherwise; presets override
 * what a small machine needs.
 */

/** The most slices one round may have. */
export const MAX_SLICES = 64;

const range = (lo: number, hi: number) =>
  z
    .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
    .refine(([a, b]) => a <= b, { message: 'first value must not exceed the second' })
    .default([lo, hi]);

/**
 * How long a schedule phase lasts: `{ epochs }` (the reference unit), `{ steps }` (optimizer steps)
 * or `{ fraction }` of the run's steps. Steps and fractions suit short runs, where one epoch is most
 * of the run (a one-epoch run with `freezeLastLayer: 1` never trains its last layer).
 */
export const scheduleSpanSchema = z
  .object({
    epochs: z.number().min(0).optional().describe('epochs of iterations (may be fractional)'),
    steps: z.number().int().min(0).optional().describe('optimizer steps'),
    fraction: z.number().min(0).max(1).optional().describe("fraction of the run's steps, 0-1"),
  })
  .strict()
  .refine((span) => Object.values(span).filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of "epochs", "steps" or "fraction"',
  });

export type ScheduleSpan = z.infer<typeof scheduleSpanSchema>;

export const modelSchema = z
  .object({
    /** Named size; `custom` takes embedDim/depth/numHeads as given. */
    arch: z.enum(['vit_tiny', 'vit_small', 'vit_base', 'custom']).default('vit_small'),
    patchSize: z.number().int().min(1).max(64).default(16),
    embedDim: z.number().int().min(8).max(4096).optional(),
    depth: z.number().int().min(1).max(48).optional(),
    numHeads: z.number().int().min(1).max(64).optional(),
    mlpRatio: z.number().positive().max(16).default(4),
    qkvBias: z.boolean().default(true),
    inChans: z.number().int().min(1).max(4).default(3),
    /** Student stochastic-depth rate (teacher always 0). */
    dropPathRate: z.number().min(0).max(0.9).default(0.1),
    /** Exact erf GELU per the spec; `tanh` is the faster approximation (a deviation, opt-in). */
    gelu: z.enum(['exact', 'tanh']).default('exact'),
    /** `dino-v1`: scale-factor coordinate mapping of the released code; `size`: explicit output size (DINOv2). */
    posEmbedInterpolation: z.enum(['dino-v1', 'size']).default('dino-v1'),
  })
  .strict();

export const headSchema = z
  .object({
    outDim: z.number().int().min(2).max(262144).default(65536),
    hiddenDim: z.number().int().min(1).max(16384).default(2048),
    bottleneckDim: z.number().int().min(1).max(4096).default(256),
    nlayers: z.number().int().min(1).max(8).default(3),
    normLastLayer: z.boolean().default(true),
  })
  .strict();

export const lossSchema = z
  .object({
    studentTemp: z.number().positive().max(10).default(0.1),
    teacherTemp: z.number().positive().max(1).default(0.04),
    warmupTeacherTemp: z.number().positive().max(1).default(0.04),
    warmupTeacherTempEpochs: z.number().int().min(0).default(0),
    /** Replaces warmupTeacherTempEpochs when given; `{ epochs }` ramps per epoch as the reference does. */
    warmupTeacherTempFor: scheduleSpanSchema
      .optional()
      .describe(
        'teacher-temperature warmup as { epochs } (whole, one value per epoch as in the reference), ' +
          '{ steps } or { fraction } of the run (one value per step); replaces warmupTeacherTempEpochs. ' +
          'Paper: 30 epochs from 0.04 to 0.07; lower teacherTemp if the loss does not decrease',
      ),
    centerMomentum: z.number().min(0).max(1).default(0.9),
  })
  .strict();

export const optimSchema = z
  .object({
    optimizer: z.enum(['adamw']).default('adamw'),
    /** Peak learning rate per 256 images; scaled linearly by the global batch. */
    lr: z.number().positive().max(1).default(0.0005),
    minLr: z.number().min(0).max(1).default(1e-6),
    warmupEpochs: z.number().min(0).default(10),
    warmupFor: scheduleSpanSchema
      .optional()
      .describe(
        'linear learning-rate warmup as { epochs }, { steps } or { fraction } of the run; replaces ' +
          'warmupEpochs. Reference: 10 epochs; a short run wants a few hundred steps or about 0.1',
      ),
    weightDecay: z.number().min(0).max(10).default(0.04),
    weightDecayEnd: z.number().min(0).max(10).default(0.4),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    /** Per-tensor gradient-norm clip; 0 disables. */
    clipGrad: z.number().min(0).default(3.0),
    /** Epochs during which the head's last layer is not updated at all. */
    freezeLastLayer: z.number().int().min(0).default(1),
    freezeLastLayerFor: scheduleSpanSchema
      .optional()
      .describe(
        "how long the head's last layer is not updated, as { epochs }, { steps } or { fraction } of " +
          'the run; replaces freezeLastLayer. Reference: 1 epoch; raise it if the loss stalls',
      ),
    momentumTeacher: z.number().min(0).max(1).default(0.996),
  })
  .strict();

export const augmentSchema = z
  .object({
    globalCropSize: z.number().int().min(4).max(1024).default(224),
    localCropSize: z.number().int().min(4).max(1024).default(96),
    localCropsNumber: z.number().int().min(0).max(32).default(8),
    globalCropsScale: range(0.4, 1.0),
    localCropsScale: range(0.05, 0.4),
    /** Gaussian-blur σ range in pixels of the crop (PIL radius; spec §8). Scale it down for tiny crops. */
    blurSigma: z
      .tuple([z.number().positive().max(32), z.number().positive().max(32)])
      .refine(([a, b]) => a <= b, { message: 'first value must not exceed the second' })
      .default([0.1, 2.0]),
    /** Blur probability of global view 1, global view 2 and every local view. */
    blurProbabilities: z
      .tuple([z.number().min(0).max(1), z.number().min(0).max(1), z.number().min(0).max(1)])
      .default([1.0, 0.1, 0.5]),
    /** Solarisation probability of global view 2 (the other views are never solarised). */
    solarizeProbability: z.number().min(0).max(1).default(0.2),
    mean: z.tuple([z.number(), z.number(), z.number()]).default([0.485, 0.456, 0.406]),
    std: z
      .tuple([z.number().positive(), z.number().positive(), z.number().positive()])
      .default([0.229, 0.224, 0.225]),
  })
  .strict();

export const trainSchema = z
  .object({
    /** Images per optimizer step (global batch across replicas). */
    batchSize: z.number().int().min(2).max(8192).default(64),
    /** Images per forward/backward pass; gradients are accumulated up to batchSize. 0 = whole batch. */
    microBatchSize: z.number().int().min(0).max(8192).default(0),
    epochs: z.number().int().min(1).max(10000).default(100),
    steps: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        'total optimizer steps; when given the run trains this many steps instead of train.epochs ' +
          'epochs, and every schedule spans them (epochs still count iterations over the dataset)',
      ),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(0),
    /** Optimizer steps per training shard (queued runs). */
    stepsPerShard: z.number().int().min(1).default(100),
  })
  .strict();

/**
 * One run across many workers (DiLoCo, Douillard et al. 2023, arXiv 2311.08105). With `slices` > 1
 * the run trains in rounds: each of the slices trains `syncEverySteps` steps from the round's merged
 * checkpoint on its own disjoint part of the data, on whichever worker takes it, and a merge applies
 * the outer optimizer to the averaged change. Use it when a run should finish sooner than one worker
 * can train it and more workers consume its queue; one slice (the default) is plain sequential
 * training. Rounds communicate once per `syncEverySteps` steps: larger is cheaper, smaller tracks
 * synchronous training more closely.
 */
export const outerOptimizerSchema = z
  .object({
    /**
     * Outer learning rate on the averaged parameter change. The default, 1 with momentum 0, is plain
     * parameter averaging: with 2 slices at H = 50 it scored 1 to 2 points of k-NN above the paper's
     * Nesterov step (lr 0.7, momentum 0.9, tuned for 8 workers at H = 500) on fmnist-tiny and
     * fmnist-fast (README, bench:scale). Try the paper's values with many slices and long rounds.
     */
    lr: z.number().gt(0).max(2).default(1),
    /** Outer momentum (default 0: plain averaging; paper: 0.9). */
    momentum: z.number().min(0).lt(1).default(0),
    /** Nesterov momentum, as in the paper; false is heavy-ball momentum. */
    nesterov: z.boolean().default(true),
  })
  .strict();

export const parallelSchema = z
  .object({
    /** Workers that train one round together; each takes a disjoint part of every epoch. */
    slices: z.number().int().min(1).max(MAX_SLICES).default(1),
    /** Inner steps each slice trains between merges (H; the paper uses 500, OpenDiLoCo also 50). */
    syncEverySteps: z.number().int().min(1).max(100000).default(50),
    outer: outerOptimizerSchema.default(outerOptimizerSchema.parse({})),
  })
  .strict();

export const runConfigSchema = z
  .object({
    model: modelSchema.default(modelSchema.parse({})),
    head: headSchema.default(headSchema.parse({})),
    loss: lossSchema.default(lossSchema.parse({})),
    optim: optimSchema.default(optimSchema.parse({})),
    augment: augmentSchema.default(augmentSchema.parse({})),
    train: trainSchema.default(trainSchema.parse({})),
    parallel: parallelSchema.default(parallelSchema.parse({})),
  })
  .strict()
  .superRefine((c, ctx) => {
    const p = c.model.patchSize;
    if (c.augment.globalCropSize % p !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['augment', 'globalCropSize'],
        message: `must be a multiple of model.patchSize (${p})`,
      });
    if (c.augment.localCropsNumber > 0 && c.augment.localCropSize % p !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['augment', 'localCropSize'],
        message: `must be a multiple of model.patchSize (${p})`,
      });
    if (c.augment.localCropsNumber > 0 && c.augment.localCropSize > c.augment.globalCropSize)
      ctx.addIssue({
        code: 'custom',
        path: ['augment', 'localCropSize'],
        message: 'must not exceed augment.globalCropSize',
      });
    if (c.model.arch === 'custom') {
      for (const k of ['embedDim', 'depth', 'numHeads'] as const)
        if (c.model[k] === undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['model', k],
            message: 'required when model.arch is "custom"',
          });
    }
    const dims = resolveModelDims(c.model);
    if (dims.embedDim % dims.numHeads !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['model', 'numHeads'],
        message: `must divide embedDim (${dims.embedDim})`,
      });
    const micro = c.train.microBatchSize;
    if (micro > 0 && c.train.batchSize % micro !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['train', 'microBatchSize'],
        message: `must divide train.batchSize (${c.train.batchSize})`,
      });
    for (const problem of scheduleSpanProblems(c)) ctx.addIssue({ code: 'custom', ...problem });
  });

/**
 * Schedule lengths that cannot fit the run whatever the dataset: epochs beyond train.epochs (when
 * the run is counted in epochs), a teacher-temperature ramp in fractional epochs. Steps are checked
 * against the run's length once the dataset is known (`scheduleStepProblems`).
 */
function scheduleSpanProblems(c: {
  optim: { warmupEpochs: number; warmupFor?: ScheduleSpan };
  loss: { warmupTeacherTempEpochs: number; warmupTeacherTempFor?: ScheduleSpan };
  train: { epochs: number; steps?: number };
}): { path: string[]; message: string }[] {
  const problems: { path: string[]; message: string }[] = [];
  const epochsOf = (legacy: number, span: ScheduleSpan | undefined, path: string[], legacyPath: string[]) =>
    span === undefined
      ? { epochs: legacy, path: legacyPath }
      : { epochs: span.epochs, path: [...path, 'epochs'] };
  const spans = [
    epochsOf(c.optim.warmupEpochs, c.optim.warmupFor, ['optim', 'warmupFor'], ['optim', 'warmupEpochs']),
    epochsOf(
      c.loss.warmupTeacherTempEpochs,
      c.loss.warmupTeacherTempFor,
      ['loss', 'warmupTeacherTempFor'],
      ['loss', 'warmupTeacherTempEpochs'],
    ),
  ];
  if (c.train.steps === undefined) {
    for (const { epochs, path } of spans)
      if (epochs !== undefined && epochs > c.train.epochs)
        problems.push({ path, message: 'must not exceed train.epochs' });
  }
  const teacherEpochs = c.loss.warmupTeacherTempFor?.epochs;
  if (teacherEpochs !== undefined && !Number.isInteger(teacherEpochs))
    problems.push({
      path: ['loss', 'warmupTeacherTempFor', 'epochs'],
      message: 'must be whole (the ramp has one value per epoch); use { steps } or { fraction } for less',
    });
  return problems;
}

export type RunConfig = z.infer<typeof runConfigSchema>;
export type RunConfigInput = z.input<typeof runConfigSchema>;
export type ModelConfig = RunConfig['model'];
export type HeadConfig = RunConfig['head'];
export type LossConfig = RunConfig['loss'];
export type OptimConfig = RunConfig['optim'];
export type AugmentConfig = RunConfig['augment'];
export type TrainConfig = RunConfig['train'];
export type ParallelConfig = RunConfig['parallel'];

const namedSizes = {
  vit_tiny: { embedDim: 192, depth: 12, numHeads: 3 },
  vit_small: { embedDim: 384, depth: 12, numHeads: 6 },
  vit_base: { embedDim: 768, depth: 12, numHeads: 12 },
} as const;

export interface ModelDims {
  embedDim: number;
  depth: number;
  numHeads: number;
}

/** Named sizes give defaults; explicit embedDim/depth/numHeads override them. */
export function resolveModelDims(
  m: Pick<ModelConfig, 'arch' | 'embedDim' | 'depth' | 'numHeads'>,
): ModelDims {
  const base = m.arch === 'custom' ? { embedDim: 0, depth: 0, numHeads: 1 } : namedSizes[m.arch];
  return {
    embedDim: m.embedDim ?? base.embedDim,
    depth: m.depth ?? base.depth,
    numHeads: m.numHeads ?? base.numHeads,
  };
}

export class ConfigError extends Error {
  constructor(readonly reasons: string[]) {
    super(`invalid run config: ${reasons.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses and validates; throws ConfigError listing every problem with its field path. */
export function parseRunConfig(input: unknown): RunConfig {
  const r = runConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw new ConfigError(r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`));
}
