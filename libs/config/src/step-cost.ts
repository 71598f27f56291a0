import { resolveModelDims, type RunConfig } from './run-config';

/**
 * What one training step of a run config costs, from the config alone: parameters, the memory
 * the step's tensors occupy together, and its matmul FLOPs. Pure arithmetic, so the API can
 * refuse a run no worker can train without loading a tensor backend.
 *
 * The memory figure counts only tensors that must exist at the same time (what the forward
 * keeps for the backward, the state, the batch). Allocator slack and short-lived temporaries
 * come on top, so a step that does not fit this estimate cannot fit at all.
 */

/** Every tensor is float32: TensorFlow.js has no mixed precision on CPU (README, deviations). */
export const BYTES_PER_VALUE = 4;

/**
 * Values per token that each transformer block keeps for its backward, in units of the width
 * they have. D-wide: LayerNorm x̂ twice (both norms save x̂ and recompute the rest), the two norm
 * outputs fed to the linears, q, k and v in head layout, the attention context fed to the output
 * projection. Hidden-wide: fc1's output (the GELU's input) and the GELU's output (fc2's input).
 * The residual adds and the drop-path masks keep nothing of this size.
 */
export const SAVED_WIDTHS_PER_BLOCK = { embed: 8, hidden: 2 } as const;

/**
 * Attention maps (heads × tokens² per image) alive in a block: the softmax probabilities every
 * block keeps for its backward, plus dP and dS while the block being differentiated computes its
 * gradient (the softmax backward needs both at once).
 */
export const ATTENTION_MAPS = { savedPerBlock: 1, backwardTransient: 2 } as const;

/**
 * K-wide rows alive at the loss: per student crop the logits, the log-softmax the cross-entropy
 * keeps and the logits' gradient; per teacher crop (the two globals) the logits and the centred,
 * sharpened softmax targets.
 */
export const HEAD_OUTPUT_ROWS = { perStudentCrop: 3, perTeacherCrop: 2 } as const;

/**
 * Gradient-sized buffers: the running sum over micro-batches next to the micro-batch's own
 * gradients during the backward, or next to the clipped copy during the update.
 */
export const GRADIENT_BUFFERS = 2;

/** Tokens of one crop of side `size`: its patches plus [CLS]. */
export function tokensPerCrop(size: number, patchSize: number): number {
  return (size / patchSize) ** 2 + 1;
}

/** MLP width of a block: int(D · mlpRatio), as the model builds it. */
function mlpHidden(config: Pick<RunConfig, 'model'>, embedDim: number): number {
  return Math.floor(embedDim * config.model.mlpRatio);
}

/** Widths through the head's MLP: [D, hidden…, bottleneck]. */
function headWidths(config: Pick<RunConfig, 'head'>, embedDim: number): number[] {
  const h = config.head;
  return [embedDim, ...Array<number>(h.nlayers - 1).fill(h.hiddenDim), h.bottleneckDim];
}

/** Crop sizes of one image in a training step: the two globals first, then the locals. */
function cropSizes(config: Pick<RunConfig, 'augment'>): number[] {
  const a = config.augment;
  return [a.globalCropSize, a.globalCropSize, ...Array<number>(a.localCropsNumber).fill(a.localCropSize)];
}

/**
 * Matmul FLOPs (a multiply-add counts 2) of one forward pass of backbone + head over `images`
 * crops of side `size`. Elementwise work is left out, so achieved GFLOP/s compare directly
 * with a plain matmul's peak.
 */
export function forwardFlops(config: RunConfig, images: number, size: number): number {
  const { embedDim: D, depth } = resolveModelDims(config.model);
  const p = config.model.patchSize;
  const patches = (size / p) ** 2;
  const n = patches + 1;
  const tokens = images * n;
  const hidden = mlpHidden(config, D);
  const patchEmbed = 2 * images * patches * p * p * config.model.inChans * D;
  const perBlock = 2 * tokens * (4 * D * D + 2 * D * hidden) + 4 * images * n * n * D;
  const dims = headWidths(config, D);
  let head = 2 * images * config.head.bottleneckDim * config.head.outDim;
  for (let i = 0; i + 1 < dims.length; i++) head += 2 * images * dims[i] * dims[i + 1];
  return patchEmbed + depth * perBlock + head;
}

/** One training step: student forward + backward (≈ 2 forwards) on every crop, teacher forward on the globals. */
export function trainStepFlops(config: RunConfig, batch = config.train.batchSize): number {
  const a = config.augment;
  const studentFwd =
    2 * forwardFlops(config, batch, a.globalCropSize) +
    a.localCropsNumber * forwardFlops(config, batch, a.localCropSize);
  const teacherFwd = 2 * forwardFlops(config, batch, a.globalCropSize);
  return 3 * studentFwd + teacherFwd;
}

export interface ParameterCount {
  backbone: number;
  head: number;
  /** backbone + head; the teacher holds as many. */
  student: number;
  /** Student parameters that get gradients and AdamW moments (the prototypes' scale g is fixed with normLastLayer). */
  trainable: number;
}

/**
 * Parameters of the student (the teacher is a copy). The positional table is sized for the global
 * crop, as the model initialises it.
 */
export function parameterCount(config: Pick<RunConfig, 'model' | 'head' | 'augment'>): ParameterCount {
  const { model, head } = config;
  const { embedDim: D, depth } = resolveModelDims(model);
  const hidden = mlpHidden(config, D);
  const embedding = D + tokensPerCrop(config.augment.globalCropSize, model.patchSize) * D;
  const patchEmbed = model.inChans * model.patchSize ** 2 * D + D;
  const block =
    2 * 2 * D + // norm1, norm2
    4 * D * D + // q, k, v, proj weights
    (model.qkvBias ? 3 * D : 0) +
    D + // proj bias
    D * hidden +
    hidden + // fc1
    hidden * D +
    D; // fc2
  const backbone = embedding + patchEmbed + depth * block + 2 * D;
  const widths = headWidths(config, D);
  let mlp = 0;
  for (let i = 0; i + 1 < widths.length; i++) mlp += widths[i] * widths[i + 1] + widths[i + 1];
  const lastLayer = head.outDim + head.bottleneckDim * head.outDim; // weight_g, weight_v
  const student = backbone + mlp + lastLayer;
  return {
    backbone,
    head: mlp + lastLayer,
    student,
    trainable: student - (head.normLastLayer ? head.outDim : 0),
  };
}

/** Bytes of one training step's tensors by what holds them; `total` is their sum. */
export interface StepMemory {
  /** Student parameters. */
  student: number;
  /** The EMA teacher: a full copy of the student. */
  teacher: number;
  /** GRADIENT_BUFFERS gradient-sized buffers of the trainable parameters. */
  gradients: number;
  /** AdamW's first and second moments of every trainable parameter. */
  optimizer: number;
  /** What the student's forward keeps for its backward over one micro-batch of every crop, backbone and head. */
  activations: number;
  /** Attention maps of one micro-batch (saved per block, plus the transients of one block's backward). */
  attentionMaps: number;
  /** K-wide rows of one micro-batch at the loss (student and teacher logits, log-softmax, targets, gradient). */
  headOutputs: number;
  /** The whole batch's crops, prepared before the step and held while its micro-batches run. */
  inputBatch: number;
  total: number;
}

export interface StepCost {
  parameters: ParameterCount;
  /** Images per forward/backward pass (train.microBatchSize, or the whole batch when 0). */
  microBatchSize: number;
  memoryBytes: StepMemory;
  flopsPerStep: number;
  flopsPerImage: number;
}

/** Images per forward/backward pass, as the training step slices a batch. */
export function effectiveMicroBatch(train: Pick<RunConfig['train'], 'batchSize' | 'microBatchSize'>): number {
  return train.microBatchSize > 0 ? Math.min(train.microBatchSize, train.batchSize) : train.batchSize;
}

/** Values the student keeps for its backward over one micro-batch of `micro` images, per crop group. */
function activationValues(config: RunConfig, micro: number) {
  const { embedDim: D, depth, numHeads } = resolveModelDims(config.model);
  const hidden = mlpHidden(config, D);
  const p = config.model.patchSize;
  const sizes = cropSizes(config);
  const crops = sizes.length;
  const tokens = sizes.reduce((sum, size) => sum + tokensPerCrop(size, p), 0);
  const squaredTokens = sizes.reduce((sum, size) => sum + tokensPerCrop(size, p) ** 2, 0);
  // patchify's output is the patch-embedding linear's saved input: every pixel of every crop.
  const pixels = sizes.reduce((sum, size) => sum + size * size * config.model.inChans, 0);
  const perToken = SAVED_WIDTHS_PER_BLOCK.embed * D + SAVED_WIDTHS_PER_BLOCK.hidden * hidden;
  const h = config.head;
  // Per crop row: the head's linear inputs and GELU inputs, the L2-normalised bottleneck (y, 1/‖x‖).
  const headRow = D + 2 * h.hiddenDim * (h.nlayers - 1) + h.bottleneckDim + 1;
  // The normalised prototypes u and W = g·u (bottleneck × K each) are kept for the backward.
  const prototypes = 2 * h.bottleneckDim * h.outDim;
  const logitRows = HEAD_OUTPUT_ROWS.perStudentCrop * crops + HEAD_OUTPUT_ROWS.perTeacherCrop * 2;
  return {
    activations: micro * (pixels + depth * tokens * perToken + crops * headRow) + prototypes,
    attentionMaps:
      micro *
      numHeads *
      squaredTokens *
      (depth * ATTENTION_MAPS.savedPerBlock + ATTENTION_MAPS.backwardTransient),
    headOutputs: micro * logitRows * h.outDim,
  };
}

/** Parameters, memory and FLOPs of one training step of `config` on one worker. */
export function estimateStepCost(config: RunConfig): StepCost {
  const parameters = parameterCount(config);
  const micro = effectiveMicroBatch(config.train);
  const values = activationValues(config, micro);
  const pixelsPerImage = cropSizes(config).reduce((sum, size) => sum + size * size * 3, 0);
  const memory = {
    student: parameters.student,
    teacher: parameters.student,
    gradients: GRADIENT_BUFFERS * parameters.trainable,
    optimizer: 2 * parameters.trainable,
    ...values,
    // The data pipeline always produces 3-channel crops.
    inputBatch: config.train.batchSize * pixelsPerImage,
  };
  const memoryBytes = Object.fromEntries(
    Object.entries(memory).map(([name, count]) => [name, count * BYTES_PER_VALUE]),
  ) as Omit<StepMemory, 'total'>;
  const total = Object.values(memoryBytes).reduce((sum, bytes) => sum + bytes, 0);
  const flopsPerStep = trainStepFlops(config);
  return {
    parameters,
    microBatchSize: micro,
    memoryBytes: { ...memoryBytes, total },
    flopsPerStep,
    flopsPerImage: flopsPerStep / config.train.batchSize,
  };
}
