import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import {
  CENTER_TENSOR,
  CHECKPOINT_FILES,
  decodeCheckpoint,
  encodeCheckpoint,
  type CheckpointInput,
} from '../src/checkpoint';
import { decodeSafetensors, encodeSafetensors } from '../src/safetensors';
import { rngFor, uniform } from '../src/rng';

const D = 4;
const K = 7;

/** Internal names and shapes of a one-block ViT with a DINO head (params.ts layout), C = 1, p = 2. */
function shapes(): Map<string, number[]> {
  return new Map<string, number[]>([
    ['backbone.cls_token', [1, 1, D]],
    ['backbone.pos_embed', [1, 5, D]],
    ['backbone.patch_embed.proj.weight', [4, D]],
    ['backbone.patch_embed.proj.bias', [D]],
    ['backbone.blocks.0.norm1.weight', [D]],
    ['backbone.blocks.0.norm1.bias', [D]],
    ['backbone.blocks.0.attn.q.weight', [D, D]],
    ['backbone.blocks.0.attn.k.weight', [D, D]],
    ['backbone.blocks.0.attn.v.weight', [D, D]],
    ['backbone.blocks.0.attn.q.bias', [D]],
    ['backbone.blocks.0.attn.k.bias', [D]],
    ['backbone.blocks.0.attn.v.bias', [D]],
    ['backbone.blocks.0.attn.proj.weight', [D, D]],
    ['backbone.blocks.0.attn.proj.bias', [D]],
    ['backbone.blocks.0.norm2.weight', [D]],
    ['backbone.blocks.0.norm2.bias', [D]],
    ['backbone.blocks.0.mlp.fc1.weight', [D, 4 * D]],
    ['backbone.blocks.0.mlp.fc1.bias', [4 * D]],
    ['backbone.blocks.0.mlp.fc2.weight', [4 * D, D]],
    ['backbone.blocks.0.mlp.fc2.bias', [D]],
    ['backbone.norm.weight', [D]],
    ['backbone.norm.bias', [D]],
    ['head.mlp.weight', [D, 3]],
    ['head.mlp.bias', [3]],
    ['head.last_layer.weight_g', [K, 1]],
    ['head.last_layer.weight_v', [3, K]],
  ]);
}

function values(shape: number[], seed: number, purpose: string): Float32Array {
  return uniform(rngFor(seed, purpose), tf.util.sizeFromShape(shape), -1, 1);
}

function params(seed: number): Map<string, tf.Tensor> {
  return new Map([...shapes()].map(([name, shape]) => [name, tf.tensor(values(shape, seed, name), shape)]));
}

function makeInput(): CheckpointInput {
  const student = params(1);
  const moments = new Map<string, tf.Tensor>();
  for (const name of ['backbone.blocks.0.attn.q.weight', 'head.last_layer.weight_v']) {
    const shape = shapes().get(name)!;
    moments.set(`exp_avg.${name}`, tf.tensor(values(shape, 2, name), shape));
    moments.set(`exp_avg_sq.${name}`, tf.tensor(values(shape, 3, name), shape));
  }
  const centerValues = values([1, K], 4, 'center');
  new Uint32Array(centerValues.buffer)[0] = 0x7fc00abc; // a NaN payload must survive too
  return {
    student,
    teacher: params(5),
    optimizer: {
      moments,
      stepCounts: { 'backbone.blocks.0.attn.q.weight': 12, 'head.last_layer.weight_v': 3 },
    },
    center: tf.tensor(centerValues, [1, K]),
    step: 12,
    epoch: 2,
    config: { model: { inChans: 1, patchSize: 2 }, train: { seed: 9 } },
    rng: { seed: 9, step: 12 },
    backend: 'cpu',
  };
}

function bitsOf(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

function tensorBits(t: tf.Tensor): number[] {
  return bitsOf(t.dataSync() as Float32Array);
}

describe('checkpoint', () => {
  let input: CheckpointInput;

  beforeAll(async () => {
    await tf.setBackend('wasm');
    input = makeInput();
  });

  afterAll(() => {
    tf.dispose([...input.student.values(), ...input.teacher.values(), ...input.optimizer.moments.values()]);
    input.center.dispose();
  });

  it('round-trips every tensor bit for bit, with its metadata', () => {
    const tensorsBefore = tf.memory().numTensors;
    const files = encodeCheckpoint(input);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(Object.keys(files).sort()).toEqual([...CHECKPOINT_FILES].sort());

    const ckpt = decodeCheckpoint(files, shapes());
    expect([...ckpt.student.keys()]).toEqual([...shapes().keys()]);
    for (const [name, t] of input.student) expect(bitsOf(ckpt.student.get(name)!)).toEqual(tensorBits(t));
    for (const [name, t] of input.teacher) expect(bitsOf(ckpt.teacher.get(name)!)).toEqual(tensorBits(t));
    expect([...ckpt.optimizer.moments.keys()].sort()).toEqual([...input.optimizer.moments.keys()].sort());
    for (const [name, t] of input.optimizer.moments) {
      expect(bitsOf(ckpt.optimizer.moments.get(name)!)).toEqual(tensorBits(t));
    }
    expect(ckpt.optimizer.stepCounts).toEqual(input.optimizer.stepCounts);
    expect(bitsOf(ckpt.center)).toEqual(tensorBits(input.center));
    expect({
      step: ckpt.step,
      epoch: ckpt.epoch,
      config: ckpt.config,
      rng: ckpt.rng,
      backend: ckpt.backend,
    }).toEqual({ step: 12, epoch: 2, config: input.config, rng: { seed: 9, step: 12 }, backend: 'cpu' });

    // Same input, same bytes: a retried shard rewrites an identical checkpoint.
    const again = encodeCheckpoint(input);
    for (const name of CHECKPOINT_FILES)
      expect(Buffer.from(again[name]).equals(Buffer.from(files[name]))).toBe(true);
  });

  it('stores the networks under reference names and layouts', () => {
    const files = encodeCheckpoint(input);
    const { tensors, metadata } = decodeSafetensors(files['teacher.safetensors']);
    expect(metadata).toEqual({ format: 'pt', producer: 'dinoq', role: 'teacher' });
    expect(tensors.get('backbone.blocks.0.attn.qkv.weight')!.shape).toEqual([3 * D, D]);
    expect(tensors.get('backbone.patch_embed.proj.weight')!.shape).toEqual([D, 1, 2, 2]);
    expect(tensors.get('head.mlp.weight')!.shape).toEqual([3, D]);
    expect(tensors.get('head.last_layer.weight_v')!.shape).toEqual([K, 3]);
    expect([...tensors.keys()].some((n) => /attn\.[qkv]\./.test(n))).toBe(false);
    const optimizer = decodeSafetensors(files['optimizer.safetensors']);
    expect(optimizer.tensors.get(CENTER_TENSOR)!.shape).toEqual([1, K]);
    expect(JSON.parse(optimizer.metadata.step_counts)).toEqual(input.optimizer.stepCounts);
  });

  describe('names the file and the tensor when something is wrong', () => {
    const good = () => encodeCheckpoint(input);
    const withFile = (name: string, bytes: Uint8Array) => ({ ...good(), [name]: bytes });

    it('missing file', () => {
      const { ['teacher.safetensors']: _dropped, ...rest } = good();
      expect(() => decodeCheckpoint(rest, shapes())).toThrow(/checkpoint is missing "teacher.safetensors"/);
    });

    it('truncated network file', () => {
      const files = good();
      const cut = files['student.safetensors'].subarray(0, files['student.safetensors'].length - 10);
      expect(() => decodeCheckpoint(withFile('student.safetensors', cut), shapes())).toThrow(
        /^student.safetensors: safetensors: tensor ".*" data_offsets .* run past/,
      );
    });

    it('a network that does not fit the model', () => {
      const bigger = new Map(shapes());
      bigger.set('backbone.pos_embed', [1, 17, D]);
      expect(() => decodeCheckpoint(good(), bigger)).toThrow(
        /^student.safetensors: parameters do not fit the model — mis-shaped: backbone.pos_embed: file \[1, 5, 4\], expected \[1, 17, 4\]/,
      );
    });

    it('bad state.json', () => {
      expect(() =>
        decodeCheckpoint(withFile('state.json', new TextEncoder().encode('{"step": 1')), shapes()),
      ).toThrow(/^state.json: /);
      const wrongStep = new TextEncoder().encode(
        JSON.stringify({
          format: 'dinoq-checkpoint',
          version: 1,
          step: -1,
          epoch: 0,
          rng: { seed: 0, step: 0 },
          backend: 'cpu',
          config: {},
        }),
      );
      expect(() => decodeCheckpoint(withFile('state.json', wrongStep), shapes())).toThrow(
        /state.json: step must be an integer ≥ 0, got -1/,
      );
    });

    it('optimizer state that does not fit', () => {
      const optimizer = decodeSafetensors(good()['optimizer.safetensors']);
      const rewrite = (mutate: (t: typeof optimizer.tensors) => void) => {
        const tensors = new Map(optimizer.tensors);
        mutate(tensors);
        return withFile('optimizer.safetensors', encodeSafetensors(tensors, optimizer.metadata));
      };
      expect(() =>
        decodeCheckpoint(
          rewrite((t) =>
            t.set(CENTER_TENSOR, { dtype: 'float32', shape: [1, 3], data: new Float32Array(3) }),
          ),
          shapes(),
        ),
      ).toThrow(/optimizer.safetensors: tensor "dino_loss.center" has shape \[1,3\], expected \[1, 7\]/);
      expect(() =>
        decodeCheckpoint(
          rewrite((t) =>
            t.set('exp_avg.head.mlp.bias', { dtype: 'float32', shape: [4], data: new Float32Array(4) }),
          ),
          shapes(),
        ),
      ).toThrow(
        /optimizer.safetensors: tensor "exp_avg.head.mlp.bias" has shape \[4\], parameter "head.mlp.bias" has \[3\]/,
      );
      expect(() =>
        decodeCheckpoint(
          rewrite((t) =>
            t.set('exp_avg.nothing', { dtype: 'float32', shape: [1], data: new Float32Array(1) }),
          ),
          shapes(),
        ),
      ).toThrow(/optimizer.safetensors: tensor "exp_avg.nothing" is not a moment of any expected parameter/);
    });

    it('refuses to write a moment under the center name', () => {
      const clash = {
        ...input,
        optimizer: { ...input.optimizer, moments: new Map([[CENTER_TENSOR, input.center]]) },
      };
      expect(() => encodeCheckpoint(clash)).toThrow(/moment name "dino_loss.center" is reserved/);
    });
  });
});
