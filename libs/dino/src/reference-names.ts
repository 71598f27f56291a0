import type * as tf from '@tensorflow/tfjs-core';

/**
 * Conversion between our parameter maps (names and layouts in params.ts) and the reference
 * PyTorch implementation's state dicts (facebookresearch/dino, spec §2.8):
 *  - q/k/v weights [D, D] in×out ⇄ one `attn.qkv.weight` [3D, D] out×in, rows q then k then v;
 *    q/k/v biases ⇄ `attn.qkv.bias` [3D];
 *  - the patch embedding [p·p·C, D] with rows ordered (py, px, c) ⇄ the Conv2d weight [D, C, p, p];
 *  - every other Linear weight in×out ⇄ out×in, and `last_layer.weight_v` [bottleneck, K] ⇄ [K, bottleneck];
 *  - everything else keeps name and layout.
 * Data is moved as 32-bit patterns, so conversions are bit-exact both ways.
 */

/** A float32 tensor in host memory, row-major. */
export interface FloatTensorData {
  shape: number[];
  data: Float32Array;
}

export interface ToReferenceOptions {
  /**
   * Export only the parameters under this prefix and drop it from the names: `backbone.` gives a
   * backbone-only file (`cls_token`, `blocks.0.attn.qkv.weight`, …). Default: everything, full names.
   */
  prefix?: string;
  /** Image channels C, needed to split the patch-embedding rows p·p·C. Default 3. */
  inChans?: number;
}

export interface FromReferenceOptions {
  /** Channels of the patch embedding; default: read from the file's [D, C, p, p] tensor. */
  inChans?: number;
  /** Ignore names the expected shapes do not know (e.g. a head when loading a backbone). Default false. */
  allowUnexpected?: boolean;
}

type Layout = 'same' | 'transpose' | 'patch' | 'qkv';

interface Entry {
  /** Reference name with the full `backbone.` / `head.` prefix. */
  refName: string;
  /** Internal names whose data makes up this reference tensor (three for qkv). */
  parts: string[];
  partShape: number[];
  layout: Layout;
  /** null when the internal shape cannot be expressed in the reference layout. */
  refShape: number[] | null;
}

const QKV = /^(.*\.)?attn\.([qkv])\.(weight|bias)$/;
const PATCH = /(^|\.)patch_embed\.proj\.weight$/;
const LINEAR = /(^|\.)(attn\.proj|mlp\.fc[12]|mlp(\.\d+)?)\.weight$|(^|\.)last_layer\.weight_v$/;

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmt(shape: readonly number[] | null): string {
  return shape ? `[${shape.join(', ')}]` : '[?]';
}

function bits(data: Float32Array): Uint32Array {
  return new Uint32Array(data.buffer, data.byteOffset, data.length);
}

function patchRefShape(shape: readonly number[], inChans: number): number[] | null {
  if (shape.length !== 2) return null;
  const [rows, dim] = shape;
  const p = Math.round(Math.sqrt(rows / inChans));
  return p >= 1 && p * p * inChans === rows ? [dim, inChans, p, p] : null;
}

/** Groups internal names into reference tensors; `inChansFor` picks C for a patch embedding. */
function plan(
  shapes: ReadonlyMap<string, readonly number[]>,
  inChansFor: (refName: string) => number,
): Entry[] {
  const entries: Entry[] = [];
  const qkvGroups = new Map<string, Entry>();
  for (const [name, rawShape] of shapes) {
    const shape = [...rawShape];
    const qkv = QKV.exec(name);
    if (qkv) {
      const [prefix, suffix] = [`${qkv[1] ?? ''}attn.`, qkv[3]];
      const refName = `${prefix}qkv.${suffix}`;
      let entry = qkvGroups.get(refName);
      if (!entry) {
        const parts = ['q', 'k', 'v'].map((m) => `${prefix}${m}.${suffix}`);
        entry = { refName, parts, partShape: shape, layout: 'qkv', refShape: null };
        qkvGroups.set(refName, entry);
        entries.push(entry);
      }
      if (!sameShape(entry.partShape, shape)) {
        throw new Error(
          `"${name}" has shape ${fmt(shape)} but its q/k/v siblings have ${fmt(entry.partShape)}`,
        );
      }
      continue;
    }
    if (PATCH.test(name)) {
      entries.push({
        refName: name,
        parts: [name],
        partShape: shape,
        layout: 'patch',
        refShape: patchRefShape(shape, inChansFor(name)),
      });
    } else if (LINEAR.test(name)) {
      const refShape = shape.length === 2 ? [shape[1], shape[0]] : null;
      entries.push({ refName: name, parts: [name], partShape: shape, layout: 'transpose', refShape });
    } else {
      entries.push({ refName: name, parts: [name], partShape: shape, layout: 'same', refShape: shape });
    }
  }
  for (const entry of qkvGroups.values()) {
    const missing = entry.parts.filter((p) => !shapes.has(p));
    if (missing.length > 0) {
      throw new Error(
        `"${entry.refName}" needs q, k and v, but ${missing.map((m) => `"${m}"`).join(', ')} missing`,
      );
    }
    const s = entry.partShape;
    const isWeight = entry.refName.endsWith('.weight');
    entry.refShape =
      isWeight && s.length === 2 ? [3 * s[1], s[0]] : !isWeight && s.length === 1 ? [3 * s[0]] : null;
  }
  return entries;
}

function transposeInto(src: Uint32Array, rows: number, cols: number, dst: Uint32Array, dstOffset = 0): void {
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) dst[dstOffset + c * rows + r] = src[r * cols + c];
}

/** Internal → reference data for one entry. */
function toRefData(entry: Entry, parts: Float32Array[]): Float32Array {
  const shape = entry.refShape!;
  const out = new Float32Array(size(shape));
  const dst = bits(out);
  switch (entry.layout) {
    case 'same':
      dst.set(bits(parts[0]));
      break;
    case 'transpose':
      transposeInto(bits(parts[0]), entry.partShape[0], entry.partShape[1], dst);
      break;
    case 'qkv': {
      const partSize = size(entry.partShape);
      parts.forEach((part, j) => {
        if (entry.partShape.length === 1) dst.set(bits(part), j * partSize);
        else transposeInto(bits(part), entry.partShape[0], entry.partShape[1], dst, j * partSize);
      });
      break;
    }
    case 'patch': {
      const [dim, chans, p] = shape;
      const src = bits(parts[0]);
      for (let py = 0; py < p; py++)
        for (let px = 0; px < p; px++)
          for (let c = 0; c < chans; c++) {
            const row = ((py * p + px) * chans + c) * dim;
            for (let d = 0; d < dim; d++) dst[((d * chans + c) * p + py) * p + px] = src[row + d];
          }
      break;
    }
  }
  return out;
}

/** Reference → internal data for one entry, one array per part. */
function fromRefData(entry: Entry, data: Float32Array): Float32Array[] {
  const src = bits(data);
  const partSize = size(entry.partShape);
  switch (entry.layout) {
    case 'same':
      return [data.slice()];
    case 'transpose': {
      const out = new Float32Array(partSize);
      const [rows, cols] = entry.partShape;
      transposeInto(src, cols, rows, bits(out));
      return [out];
    }
    case 'qkv':
      return entry.parts.map((_, j) => {
        const out = new Float32Array(partSize);
        const chunk = src.subarray(j * partSize, (j + 1) * partSize);
        if (entry.partShape.length === 1) bits(out).set(chunk);
        else transposeInto(chunk, entry.partShape[1], entry.partShape[0], bits(out));
        return out;
      });
    case 'patch': {
      const [dim, chans, p] = entry.refShape!;
      const out = new Float32Array(partSize);
      const dst = bits(out);
      for (let py = 0; py < p; py++)
        for (let px = 0; px < p; px++)
          for (let c = 0; c < chans; c++) {
            const row = ((py * p + px) * chans + c) * dim;
            for (let d = 0; d < dim; d++) dst[row + d] = src[((d * chans + c) * p + py) * p + px];
          }
      return [out];
    }
  }
}

function hostData(name: string, t: tf.Tensor | FloatTensorData): FloatTensorData {
  if ('dataSync' in t) {
    if (t.dtype !== 'float32') throw new Error(`parameter "${name}" is ${t.dtype}, expected float32`);
    return { shape: t.shape, data: t.dataSync() as Float32Array };
  }
  if (!(t.data instanceof Float32Array)) throw new Error(`parameter "${name}" must hold a Float32Array`);
  if (t.data.length !== size(t.shape)) {
    throw new Error(`parameter "${name}" has shape ${fmt(t.shape)} but ${t.data.length} values`);
  }
  return t;
}

/** Our parameters under reference names and layouts (see the module comment). */
export function toReference(
  params: ReadonlyMap<string, tf.Tensor | FloatTensorData>,
  options: ToReferenceOptions = {},
): Map<string, FloatTensorData> {
  const prefix = options.prefix ?? '';
  const inChans = options.inChans ?? 3;
  const selected = new Map<string, FloatTensorData>();
  for (const [name, t] of params) if (name.startsWith(prefix)) selected.set(name, hostData(name, t));
  const shapes = new Map([...selected].map(([name, t]) => [name, t.shape]));
  const out = new Map<string, FloatTensorData>();
  for (const entry of plan(shapes, () => inChans)) {
    if (!entry.refShape) {
      const why = entry.layout === 'patch' ? ` (not p·p·C rows with C = ${inChans}; set inChans)` : '';
      throw new Error(`"${entry.parts[0]}" of shape ${fmt(entry.partShape)} has no reference layout${why}`);
    }
    const data = toRefData(
      entry,
      entry.parts.map((p) => selected.get(p)!.data),
    );
    out.set(entry.refName.slice(prefix.length), { shape: entry.refShape, data });
  }
  return out;
}

/** The reference loaders' normalisation: drop `module.` (DDP) and `backbone.` (multi-crop wrapper). */
function internalStyleName(fileName: string): string {
  let n = fileName.startsWith('module.') ? fileName.slice('module.'.length) : fileName;
  n = n.startsWith('backbone.') ? n.slice('backbone.'.length) : n;
  return n.startsWith('head.') ? n : `backbone.${n}`;
}

/**
 * Reference-named tensors (a PyTorch state dict, a backbone-only export, or our checkpoint files)
 * back to our names and layouts, checked against `expectedShapes` (internal names → shapes, e.g.
 * `paramShapes(config)`). Returns the data in the order of `expectedShapes`.
 */
export function fromReference(
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array | Int32Array }>,
  expectedShapes: ReadonlyMap<string, readonly number[]>,
  options: FromReferenceOptions = {},
): Map<string, Float32Array> {
  const byName = new Map<
    string,
    { fileName: string; shape: readonly number[]; data: Float32Array | Int32Array }
  >();
  const duplicates: string[] = [];
  for (const [fileName, t] of tensors) {
    const name = internalStyleName(fileName);
    const seen = byName.get(name);
    if (seen) duplicates.push(`"${seen.fileName}" and "${fileName}"`);
    byName.set(name, { fileName, ...t });
  }
  if (duplicates.length > 0) throw new Error(`the same parameter appears twice: ${duplicates.join('; ')}`);

  const inChansFor = (refName: string): number => {
    const t = byName.get(refName);
    return options.inChans ?? (t && t.shape.length === 4 ? t.shape[1] : 3);
  };
  const entries = plan(expectedShapes, inChansFor);
  const missing: string[] = [];
  const misShaped: string[] = [];
  const wrongType: string[] = [];
  const used = new Set<string>();
  for (const entry of entries) {
    const t = byName.get(entry.refName);
    if (!t) {
      missing.push(`${entry.refName} ${fmt(entry.refShape)}`);
      continue;
    }
    used.add(entry.refName);
    if (!entry.refShape || !sameShape(t.shape, entry.refShape)) {
      misShaped.push(`${t.fileName}: file ${fmt(t.shape)}, expected ${fmt(entry.refShape)}`);
    } else if (!(t.data instanceof Float32Array)) {
      wrongType.push(`${t.fileName}: int32, expected float32`);
    }
  }
  const unexpected = options.allowUnexpected
    ? []
    : [...byName].filter(([name]) => !used.has(name)).map(([, t]) => `${t.fileName} ${fmt(t.shape)}`);
  const problems = [
    missing.length ? `missing: ${missing.join(', ')}` : '',
    unexpected.length ? `unexpected: ${unexpected.join(', ')}` : '',
    misShaped.length ? `mis-shaped: ${misShaped.join('; ')}` : '',
    wrongType.length ? `wrong dtype: ${wrongType.join('; ')}` : '',
  ].filter(Boolean);
  if (problems.length > 0) throw new Error(`parameters do not fit the model — ${problems.join(' | ')}`);

  const converted = new Map<string, Float32Array>();
  for (const entry of entries) {
    const parts = fromRefData(entry, byName.get(entry.refName)!.data as Float32Array);
    entry.parts.forEach((name, j) => converted.set(name, parts[j]));
  }
  return new Map([...expectedShapes.keys()].map((name) => [name, converted.get(name)!]));
}
