import {
  decodeSafetensors,
  encodeSafetensors,
  type HostTensor,
  type SafetensorsMetadata,
} from './safetensors';

/**
 * The merge of a DiLoCo round (Douillard et al. 2023, arXiv 2311.08105) over checkpoint files.
 *
 * A round starts from the merged state θ_r; each of N slices trains its inner steps (AdamW,
 * schedules, EMA teacher, center) on its own batches and ends at θ_r,i. The outer gradient is
 * Δ = θ_r − mean_i θ_r,i, and the outer optimizer (SGD with Nesterov momentum, lr 0.7 and
 * momentum 0.9 in the paper; dinoq's default is lr 1 without momentum, plain averaging, which
 * measured better with 2 slices) turns it into θ_{r+1}. The rest of DINO's state is merged as follows:
 *
 * - **Teacher and center: averaged.** Both are exponential moving averages, which are linear in
 *   what they average: the mean of the slices' teachers is the EMA of the slices' mean student
 *   trajectory, started from the round's teacher. No outer step is applied to them; the teacher
 *   follows the student through the EMA as it does within a round. (FedEMA, ICLR 2022, merges the
 *   EMA targets of self-supervised clients by averaging as well.)
 * - **Inner AdamW moments: averaged, stored in the merged checkpoint.** Slices draw disjoint
 *   batches of one shuffled epoch, so their moments estimate the same statistics; their mean is the
 *   lower-variance estimate, and keeping one set in the merged checkpoint lets any worker take any
 *   slice of the next round and lets the number of slices change between rounds. The per-parameter
 *   step counts (bias correction) take the largest count.
 * - **Step counter: global.** A round covers N·H global steps (batches); slice i trains the steps
 *   b + i, b + i + N, … of its round (see `StepLane`), so schedules, data order and drop-path
 *   masks follow the global step and the run keeps its planned length for any N.
 *
 * Arithmetic is in float64 with one rounding to float32 per value, and written so that outer lr 1
 * with momentum 0 yields the plain mean bit for bit. A round of one slice has nothing to average:
 * its result is committed as it is, which makes one slice exactly sequential training.
 */

export interface OuterOptimizer {
  lr: number;
  momentum: number;
  nesterov: boolean;
}

/** The outer momentum buffer, kept next to the merged checkpoint it belongs to. */
export const OUTER_STATE_FILE = 'outer.safetensors';

export interface RoundMergeInput {
  /** Files of θ_r, the checkpoint the round started from (its `student.safetensors` is read). */
  start: Readonly<Record<string, Uint8Array>>;
  /** Each slice's checkpoint files, in slice order. */
  slices: readonly Readonly<Record<string, Uint8Array>>[];
  outer: OuterOptimizer;
  /** The global step and epoch the merged checkpoint is at. */
  step: number;
  epoch: number;
}

type Files = Record<string, Uint8Array>;

/** Checkpoint files of θ_{r+1}: the networks, optimizer and state, and the outer momentum. */
export function mergeRound(input: RoundMergeInput): Files {
  const { slices, outer } = input;
  if (slices.length === 0) throw new Error('a round merge needs at least one slice');
  checkOuter(outer);
  if (slices.length === 1) {
    const carried = input.start[OUTER_STATE_FILE];
    return { ...fileSet(slices[0]), ...(carried ? { [OUTER_STATE_FILE]: carried } : {}) };
  }
  const students = slices.map((s, i) => decodeFile(s, 'student.safetensors', i));
  const start = decodeFile(input.start, 'student.safetensors', 'start');
  const previous = input.start[OUTER_STATE_FILE] ? decodeFile(input.start, OUTER_STATE_FILE, 'start') : null;
  const { merged: student, momentum } = outerStep(start.tensors, students, previous?.tensors ?? null, outer);
  const out: Files = {
    'student.safetensors': encodeSafetensors(student, students[0].metadata),
    'teacher.safetensors': averageFile(slices, 'teacher.safetensors'),
    'optimizer.safetensors': averageFile(slices, 'optimizer.safetensors', mergeStepCounts),
    'state.json': stateAt(fileOf(slices[0], 'state.json', 0), input.step, input.epoch),
  };
  if (outer.momentum > 0) {
    out[OUTER_STATE_FILE] = encodeSafetensors(momentum, { producer: 'dinoq', role: 'outer-momentum' });
  }
  return out;
}

/** Δ = θ_r − mean; v ← μ·v + Δ; θ_{r+1} = θ_r − lr·(Nesterov ? Δ + μ·v : v), written from the mean. */
export function outerStep(
  start: ReadonlyMap<string, HostTensor>,
  slices: readonly { tensors: ReadonlyMap<string, HostTensor> }[],
  previousMomentum: ReadonlyMap<string, HostTensor> | null,
  outer: OuterOptimizer,
): { merged: Map<string, HostTensor>; momentum: Map<string, HostTensor> } {
  const { lr, momentum: mu, nesterov } = outer;
  const merged = new Map<string, HostTensor>();
  const momentum = new Map<string, HostTensor>();
  for (const [name, theta] of start) {
    const parts = slices.map((s, i) => sameShape(s.tensors.get(name), theta, name, `slice ${i}`));
    const prev = previousMomentum
      ? sameShape(previousMomentum.get(name), theta, name, 'outer momentum')
      : null;
    const size = theta.data.length;
    const out = new Float32Array(size);
    const v = new Float32Array(size);
    for (let k = 0; k < size; k++) {
      let sum = 0;
      for (const p of parts) sum += p.data[k];
      const mean = Math.fround(sum / parts.length);
      const delta = theta.data[k] - mean;
      const velocity = mu * (prev ? prev.data[k] : 0) + delta;
      v[k] = velocity;
      // θ_r − lr·u rewritten as mean + (Δ − lr·u): exact when lr = 1 and μ = 0.
      out[k] = mean + (nesterov ? (1 - lr) * delta - lr * mu * velocity : delta - lr * velocity);
    }
    merged.set(name, { dtype: 'float32', shape: [...theta.shape], data: out });
    momentum.set(name, { dtype: 'float32', shape: [...theta.shape], data: v });
  }
  for (const [i, s] of slices.entries()) {
    for (const name of s.tensors.keys())
      if (!start.has(name))
        throw new Error(`slice ${i}: student tensor "${name}" is not in the round's start`);
  }
  return { merged, momentum };
}

/** The elementwise mean of one file over the slices, with slice 0's metadata (optionally merged). */
function averageFile(
  slices: readonly Readonly<Record<string, Uint8Array>>[],
  file: string,
  mergeMetadata?: (all: SafetensorsMetadata[]) => SafetensorsMetadata,
): Uint8Array {
  const decoded = slices.map((s, i) => decodeFile(s, file, i));
  const first = decoded[0];
  const out = new Map<string, HostTensor>();
  for (const [name, t] of first.tensors) {
    if (t.dtype !== 'float32') throw new Error(`${file}: tensor "${name}" is ${t.dtype}, expected float32`);
    const parts = decoded.map((d, i) => sameShape(d.tensors.get(name), t, name, `${file} of slice ${i}`));
    const mean = new Float32Array(t.data.length);
    for (let k = 0; k < mean.length; k++) {
      let sum = 0;
      for (const p of parts) sum += p.data[k];
      mean[k] = sum / parts.length;
    }
    out.set(name, { dtype: 'float32', shape: [...t.shape], data: mean });
  }
  for (const [i, d] of decoded.entries()) {
    if (d.tensors.size !== first.tensors.size)
      throw new Error(
        `${file} of slice ${i} has ${d.tensors.size} tensors, slice 0 has ${first.tensors.size}`,
      );
  }
  const metadata = mergeMetadata ? mergeMetadata(decoded.map((d) => d.metadata)) : first.metadata;
  return encodeSafetensors(out, metadata);
}

/** AdamW's per-parameter step counts after a merge: the largest any slice reached. */
function mergeStepCounts(all: SafetensorsMetadata[]): SafetensorsMetadata {
  const counts: Record<string, number> = {};
  for (const metadata of all) {
    const parsed = JSON.parse(metadata.step_counts ?? '{}') as Record<string, number>;
    for (const [name, count] of Object.entries(parsed)) counts[name] = Math.max(counts[name] ?? 0, count);
  }
  return { ...all[0], step_counts: JSON.stringify(counts) };
}

/** Slice 0's state.json moved to the merged step, its other fields (config, backend) kept. */
function stateAt(bytes: Uint8Array, step: number, epoch: number): Uint8Array {
  const state = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown> & {
    rng?: { seed: number; step: number };
  };
  state.step = step;
  state.epoch = epoch;
  if (state.rng) state.rng = { ...state.rng, step };
  return new TextEncoder().encode(JSON.stringify(state, null, 2));
}

function checkOuter({ lr, momentum }: OuterOptimizer): void {
  if (!(lr > 0) || !Number.isFinite(lr)) throw new Error(`outer lr must be a positive number, got ${lr}`);
  if (!(momentum >= 0 && momentum < 1)) throw new Error(`outer momentum must be in [0, 1), got ${momentum}`);
}

function fileSet(files: Readonly<Record<string, Uint8Array>>): Files {
  const out: Files = {};
  for (const [name, bytes] of Object.entries(files)) if (name !== OUTER_STATE_FILE) out[name] = bytes;
  return out;
}

function fileOf(
  files: Readonly<Record<string, Uint8Array>>,
  name: string,
  owner: number | string,
): Uint8Array {
  const bytes = files[name];
  if (!(bytes instanceof Uint8Array))
    throw new Error(`${typeof owner === 'number' ? `slice ${owner}` : owner}: checkpoint has no ${name}`);
  return bytes;
}

function decodeFile(files: Readonly<Record<string, Uint8Array>>, name: string, owner: number | string) {
  return decodeSafetensors(fileOf(files, name, owner));
}

function sameShape(
  t: HostTensor | undefined,
  like: HostTensor,
  name: string,
  where: string,
): { data: Float32Array | Int32Array } {
  if (!t) throw new Error(`${where}: tensor "${name}" is missing`);
  if (t.shape.length !== like.shape.length || t.shape.some((d, i) => d !== like.shape[i]))
    throw new Error(
      `${where}: tensor "${name}" is [${t.shape.join(', ')}], expected [${like.shape.join(', ')}]`,
    );
  return t;
}
