import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { parseRunConfig } from '@dinoq/config';
import {
  decodeSafetensors,
  disposeParams,
  encodeSafetensors,
  initDinoParams,
  vitForward,
  type HostTensor,
  type Params,
} from '@dinoq/dino';
import { exportBackbone, importBackbone } from '../src/backbone-io';
import { tinyConfig } from './tiny-vit';

let params: Params;

beforeAll(async () => {
  await tf.setBackend('cpu');
  params = initDinoParams(tinyConfig, 21);
});

afterAll(() => disposeParams(params));

function withNames(
  bytes: Uint8Array,
  rename: (name: string) => string | null,
  extra: [string, HostTensor][] = [],
) {
  const { tensors } = decodeSafetensors(bytes);
  const out = new Map<string, HostTensor>(extra);
  for (const [name, t] of tensors) {
    const n = rename(name);
    if (n !== null) out.set(n, t);
  }
  return encodeSafetensors(out);
}

describe('backbone export / import', () => {
  it('writes the reference names and layouts without prefix, and no head', () => {
    const { tensors, metadata } = decodeSafetensors(exportBackbone(params, tinyConfig));
    const names = [...tensors.keys()];
    expect(names).toContain('cls_token');
    expect(names).toContain('blocks.1.attn.qkv.bias');
    expect(names.some((n) => n.startsWith('backbone.') || n.startsWith('head.'))).toBe(false);
    expect(tensors.get('pos_embed')!.shape).toEqual([1, 17, 16]);
    expect(tensors.get('patch_embed.proj.weight')!.shape).toEqual([16, 3, 4, 4]);
    expect(tensors.get('blocks.0.attn.qkv.weight')!.shape).toEqual([48, 16]);
    expect(tensors.get('blocks.0.mlp.fc1.weight')!.shape).toEqual([64, 16]);
    expect(tensors.size).toBe(4 + 2 * 12 + 2);
    expect(metadata).toMatchObject({
      format: 'pt',
      patch_size: '4',
      embed_dim: '16',
      depth: '2',
      num_heads: '2',
    });
  });

  it('round-trips to identical features', () => {
    const restored = importBackbone(exportBackbone(params, tinyConfig), tinyConfig);
    expect([...restored.keys()].every((n) => n.startsWith('backbone.'))).toBe(true);
    for (const [name, v] of restored) {
      expect(v.trainable).toBe(false);
      expect(Array.from(v.dataSync())).toEqual(Array.from(params.get(name)!.dataSync()));
    }
    const x = tf.randomNormal([2, 16, 16, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const a = vitForward(params, x, { config: tinyConfig });
    const b = vitForward(restored, x, { config: tinyConfig });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    disposeParams(restored);
  });

  it('accepts module. / backbone. prefixes and ignores a head', () => {
    const bytes = exportBackbone(params, tinyConfig);
    const head: [string, HostTensor] = [
      'module.head.mlp.0.weight',
      { dtype: 'float32', shape: [2, 2], data: new Float32Array(4) },
    ];
    const prefixed = withNames(bytes, (n) => `module.backbone.${n}`, [head]);
    const restored = importBackbone(prefixed, tinyConfig);
    expect(Array.from(restored.get('backbone.norm.weight')!.dataSync())).toEqual(
      Array.from(params.get('backbone.norm.weight')!.dataSync()),
    );
    disposeParams(restored);
  });

  it('names missing, mis-shaped and unknown tensors', () => {
    const bytes = exportBackbone(params, tinyConfig);
    expect(() =>
      importBackbone(
        withNames(bytes, (n) => (n === 'norm.bias' ? null : n)),
        tinyConfig,
      ),
    ).toThrow(/importBackbone.*missing: backbone\.norm\.bias/);
    const wider = parseRunConfig({
      ...tinyConfig,
      model: { ...tinyConfig.model, embedDim: 32 },
    });
    expect(() => importBackbone(bytes, wider)).toThrow(
      /mis-shaped: .*cls_token: file \[1, 1, 16\], expected \[1, 1, 32\]/,
    );
    const extra: [string, HostTensor] = [
      'blocks.9.norm1.weight',
      { dtype: 'float32', shape: [16], data: new Float32Array(16) },
    ];
    expect(() =>
      importBackbone(
        withNames(bytes, (n) => n, [extra]),
        tinyConfig,
      ),
    ).toThrow(/unexpected: blocks\.9/);
    expect(() => exportBackbone(params, wider)).toThrow(
      /backbone\.cls_token is \[1,1,16\], config says \[1,1,32\]/,
    );
  });
});
