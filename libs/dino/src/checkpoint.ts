import type * as tf from '@tensorflow/tfjs-core';
import { fromReference, toReference, type FloatTensorData } from './reference-names';
import { decodeSafetensors, encodeSafetensors, type HostTensor } from './safetensors';

/**
 * A training checkpoint as four named byte blobs; where they are stored is the caller's business.
 *
 * - `student.safetensors`, `teacher.safetensors`: the networks under the reference state-dict
 *   names and layouts, with the multi-crop wrapper's `backbone.` / `head.` prefixes
 *   (`backbone.blocks.0.attn.qkv.weight`, `head.last_layer.weight_v`, …), so PyTorch's DINO
 *   loaders read them as they read the reference checkpoints.
 * - `optimizer.safetensors`: the AdamW moments under their own names in our internal layout
 *   (optimizer state has no reference naming worth matching), plus the loss center as
 *   `dino_loss.center` (the reference keeps it in its `dino_loss` entry); the per-parameter step
 *   counts are JSON in the file's metadata under `step_counts`.
 * - `state.json`: step, epoch, config, RNG seed/step, backend and a format version.
 */

export const CHECKPOINT_FILES = [
  'student.safetensors',
  'teacher.safetensors',
  'optimizer.safetensors',
  'state.json',
] as const;
export type CheckpointFileName = (typeof CHECKPOINT_FILES)[number];
export type CheckpointFiles = Record<CheckpointFileName, Uint8Array>;
export type NetworkRole = 'student' | 'teacher';

/** The file that holds one network's weights, all a reader of that network needs. */
export function networkFileName(network: NetworkRole): CheckpointFileName {
  return `${network}.safetensors`;
}

export const CENTER_TENSOR = 'dino_loss.center';
const FORMAT = 'dinoq-checkpoint';
const VERSION = 1;

export interface CheckpointInput {
  student: ReadonlyMap<string, tf.Tensor>;
  teacher: ReadonlyMap<string, tf.Tensor>;
  optimizer: { moments: ReadonlyMap<string, tf.Tensor>; stepCounts: Readonly<Record<string, number>> };
  center: tf.Tensor;
  step: number;
  epoch: number;
  /** The run config, stored as JSON. */
  config: unknown;
  rng: { seed: number; step: number };
  /** The tfjs backend that produced the checkpoint. */
  backend: string;
  /** Image channels for the patch-embedding layout; default `config.model.inChans`, else 3. */
  inChans?: number;
}

export interface DecodedCheckpoint {
  /** Internal names (params.ts) → values in internal layout, in the order of `expectedShapes`. */
  student: Map<string, Float32Array>;
  teacher: Map<string, Float32Array>;
  /** Moments keyed `<state>.<parameter>`, each shaped like its parameter; step counts per parameter. */
  optimizer: { moments: Map<string, Float32Array>; stepCounts: Record<string, number> };
  /** The loss center, [1, K] values. */
  center: Float32Array;
  step: number;
  epoch: number;
  config: unknown;
  rng: { seed: number; step: number };
  backend: string;
}

interface StateJson {
  format: string;
  version: number;
  step: number;
  epoch: number;
  rng: { seed: number; step: number };
  backend: string;
  config: unknown;
}

function inChansOf(input: CheckpointInput): number {
  if (input.inChans !== undefined) return input.inChans;
  const fromConfig = (input.config as { model?: { inChans?: unknown } } | null)?.model?.inChans;
  return typeof fromConfig === 'number' && Number.isInteger(fromConfig) && fromConfig > 0 ? fromConfig : 3;
}

function floatTensor(file: string, name: string, t: tf.Tensor): HostTensor {
  if (t.dtype !== 'float32') throw new Error(`${file}: tensor "${name}" is ${t.dtype}, expected float32`);
  return { dtype: 'float32', shape: [...t.shape], data: t.dataSync() as Float32Array };
}

function networkFile(role: NetworkRole, params: ReadonlyMap<string, tf.Tensor>, inChans: number): Uint8Array {
  const file = networkFileName(role);
  let reference: Map<string, FloatTensorData>;
  try {
    reference = toReference(params, { inChans });
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  const tensors = new Map<string, HostTensor>(
    [...reference].map(([n, t]) => [n, { dtype: 'float32', ...t }]),
  );
  return encodeSafetensors(tensors, { format: 'pt', producer: 'dinoq', role });
}

function checkWholeNumber(where: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${where} must be an integer ≥ 0, got ${JSON.stringify(value)}`);
  }
  return value;
}

export function encodeCheckpoint(input: CheckpointInput): CheckpointFiles {
  const inChans = inChansOf(input);
  const optimizerFile = 'optimizer.safetensors';
  const optimizerTensors = new Map<string, HostTensor>();
  for (const [name, t] of input.optimizer.moments) {
    if (name === CENTER_TENSOR)
      throw new Error(`${optimizerFile}: moment name "${name}" is reserved for the center`);
    optimizerTensors.set(name, floatTensor(optimizerFile, name, t));
  }
  optimizerTensors.set(CENTER_TENSOR, floatTensor(optimizerFile, CENTER_TENSOR, input.center));
  for (const [name, count] of Object.entries(input.optimizer.stepCounts)) {
    checkWholeNumber(`${optimizerFile}: step count of "${name}"`, count);
  }
  const state: StateJson = {
    format: FORMAT,
    version: VERSION,
    step: checkWholeNumber('state.json: step', input.step),
    epoch: checkWholeNumber('state.json: epoch', input.epoch),
    rng: { seed: input.rng.seed, step: checkWholeNumber('state.json: rng.step', input.rng.step) },
    backend: input.backend,
    config: input.config,
  };
  return {
    'student.safetensors': networkFile('student', input.student, inChans),
    'teacher.safetensors': networkFile('teacher', input.teacher, inChans),
    'optimizer.safetensors': encodeSafetensors(optimizerTensors, {
      producer: 'dinoq',
      layout: 'internal',
      step_counts: JSON.stringify(input.optimizer.stepCounts),
    }),
    'state.json': new TextEncoder().encode(JSON.stringify(state, null, 2)),
  };
}

function fileOf(files: Readonly<Record<string, Uint8Array>>, name: CheckpointFileName): Uint8Array {
  const bytes = files[name];
  if (!(bytes instanceof Uint8Array)) {
    throw new Error(`checkpoint is missing "${name}" (has: ${Object.keys(files).join(', ') || 'nothing'})`);
  }
  return bytes;
}

function within<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

function parseState(bytes: Uint8Array): StateJson {
  const file = 'state.json';
  const raw = within(
    file,
    () => JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown,
  );
  if (typeof raw !== 'object' || raw === null) throw new Error(`${file}: must be a JSON object`);
  const s = raw as Partial<StateJson>;
  if (s.format !== FORMAT)
    throw new Error(`${file}: format is ${JSON.stringify(s.format)}, expected "${FORMAT}"`);
  if (s.version !== VERSION)
    throw new Error(`${file}: version ${JSON.stringify(s.version)} is not supported (${VERSION})`);
  if (typeof s.backend !== 'string') throw new Error(`${file}: backend must be a string`);
  if (typeof s.rng !== 'object' || s.rng === null || typeof s.rng.seed !== 'number') {
    throw new Error(`${file}: rng must be {seed, step}`);
  }
  if (!('config' in s)) throw new Error(`${file}: config is missing`);
  return {
    format: s.format,
    version: s.version,
    step: checkWholeNumber(`${file}: step`, s.step),
    epoch: checkWholeNumber(`${file}: epoch`, s.epoch),
    rng: { seed: s.rng.seed, step: checkWholeNumber(`${file}: rng.step`, s.rng.step) },
    backend: s.backend,
    config: s.config,
  };
}

function decodeNetwork(
  file: string,
  bytes: Uint8Array,
  expectedShapes: ReadonlyMap<string, readonly number[]>,
): Map<string, Float32Array> {
  return within(file, () => fromReference(decodeSafetensors(bytes).tensors, expectedShapes));
}

function decodeOptimizer(
  bytes: Uint8Array,
  expectedShapes: ReadonlyMap<string, readonly number[]>,
): { moments: Map<string, Float32Array>; stepCounts: Record<string, number>; center: Float32Array } {
  const file = 'optimizer.safetensors';
  const { tensors, metadata } = within(file, () => decodeSafetensors(bytes));
  const floats = new Map<string, FloatTensorData>();
  for (const [name, t] of tensors) {
    if (t.dtype !== 'float32') throw new Error(`${file}: tensor "${name}" is ${t.dtype}, expected float32`);
    floats.set(name, { shape: t.shape, data: t.data });
  }
  const center = floats.get(CENTER_TENSOR);
  if (!center) throw new Error(`${file}: tensor "${CENTER_TENSOR}" is missing`);
  floats.delete(CENTER_TENSOR);
  const outDim = expectedShapes.get('head.last_layer.weight_g')?.[0];
  const rowVector = center.shape.length === 2 && center.shape[0] === 1;
  if (!rowVector || (outDim !== undefined && center.shape[1] !== outDim)) {
    throw new Error(
      `${file}: tensor "${CENTER_TENSOR}" has shape [${center.shape}], expected [1, ${outDim ?? 'K'}]`,
    );
  }
  // Moments are named `<state>.<parameter>` (e.g. exp_avg.backbone.norm.weight) and shaped like it.
  const moments = new Map<string, Float32Array>();
  for (const [name, t] of floats) {
    const param = name.slice(name.indexOf('.') + 1);
    const shape = expectedShapes.get(param);
    if (!shape) throw new Error(`${file}: tensor "${name}" is not a moment of any expected parameter`);
    if (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i])) {
      throw new Error(
        `${file}: tensor "${name}" has shape [${t.shape}], parameter "${param}" has [${shape}]`,
      );
    }
    moments.set(name, t.data);
  }
  const stepCounts = within(file, () => {
    const parsed = JSON.parse(metadata.step_counts ?? 'null') as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error('metadata "step_counts" must be a JSON object');
    }
    const counts: Record<string, number> = {};
    for (const [name, count] of Object.entries(parsed as Record<string, unknown>)) {
      if (!expectedShapes.has(name)) {
        throw new Error(`step count for unknown parameter "${name}"`);
      }
      counts[name] = checkWholeNumber(`step count of "${name}"`, count);
    }
    return counts;
  });
  return { moments, stepCounts, center: center.data };
}

/** One network of a checkpoint (internal names → values) from its own file; other files are not read. */
export function decodeCheckpointNetwork(
  files: Readonly<Record<string, Uint8Array>>,
  network: NetworkRole,
  expectedShapes: ReadonlyMap<string, readonly number[]>,
): Map<string, Float32Array> {
  const file = networkFileName(network);
  return decodeNetwork(file, fileOf(files, file), expectedShapes);
}

/**
 * Reads a checkpoint written by `encodeCheckpoint` (or assembled from reference weights), checking
 * every network tensor against `expectedShapes` (internal names → shapes, e.g. `paramShapes(config)`).
 * Errors name the file and the tensor.
 */
export function decodeCheckpoint(
  files: Readonly<Record<string, Uint8Array>>,
  expectedShapes: ReadonlyMap<string, readonly number[]>,
): DecodedCheckpoint {
  const state = parseState(fileOf(files, 'state.json'));
  const student = decodeCheckpointNetwork(files, 'student', expectedShapes);
  const teacher = decodeCheckpointNetwork(files, 'teacher', expectedShapes);
  const { moments, stepCounts, center } = decodeOptimizer(
    fileOf(files, 'optimizer.safetensors'),
    expectedShapes,
  );
  return {
    student,
    teacher,
    optimizer: { moments, stepCounts },
    center,
    step: state.step,
    epoch: state.epoch,
    config: state.config,
    rng: state.rng,
    backend: state.backend,
  };
}
