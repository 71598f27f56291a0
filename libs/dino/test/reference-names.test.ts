import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import { fromReference, toReference, type FloatTensorData } from '../src/reference-names';
import { rngFor, uniform } from '../src/rng';

/** Internal names and shapes of a tiny ViT + DINO head, laid out as in params.ts. */
function tinyShapes(
  opts: { dim?: number; depth?: number; patch?: number; chans?: number; qkvBias?: boolean } = {},
) {
  const { dim: D = 4, depth = 2, patch: p = 2, chans: C = 3, qkvBias = true } = opts;
  const shapes = new Map<string, number[]>();
  shapes.set('backbone.cls_token', [1, 1, D]);
  shapes.set('backbone.pos_embed', [1, 5, D]);
  shapes.set('backbone.patch_embed.proj.weight', [p * p * C, D]);
  shapes.set('backbone.patch_embed.proj.bias', [D]);
  for (let i = 0; i < depth; i++) {
    const b = `backbone.blocks.${i}`;
    shapes.set(`${b}.norm1.weight`, [D]);
    shapes.set(`${b}.norm1.bias`, [D]);
    for (const m of ['q', 'k', 'v']) shapes.set(`${b}.attn.${m}.weight`, [D, D]);
    if (qkvBias) for (const m of ['q', 'k', 'v']) shapes.set(`${b}.attn.${m}.bias`, [D]);
    shapes.set(`${b}.attn.proj.weight`, [D, D]);
    shapes.set(`${b}.attn.proj.bias`, [D]);
    shapes.set(`${b}.norm2.weight`, [D]);
    shapes.set(`${b}.norm2.bias`, [D]);
    shapes.set(`${b}.mlp.fc1.weight`, [D, 4 * D]);
    shapes.set(`${b}.mlp.fc1.bias`, [4 * D]);
    shapes.set(`${b}.mlp.fc2.weight`, [4 * D, D]);
    shapes.set(`${b}.mlp.fc2.bias`, [D]);
  }
  shapes.set('backbone.norm.weight', [D]);
  shapes.set('backbone.norm.bias', [D]);
  const widths = [D, 6, 6, 5];
  for (let i = 0; i < 3; i++) {
    shapes.set(`head.mlp.${2 * i}.weight`, [widths[i], widths[i + 1]]);
    shapes.set(`head.mlp.${2 * i}.bias`, [widths[i + 1]]);
  }
  shapes.set('head.last_layer.weight_g', [7, 1]);
  shapes.set('head.last_layer.weight_v', [5, 7]);
  return shapes;
}

function randomParams(shapes: ReadonlyMap<string, number[]>, seed = 0): Map<string, FloatTensorData> {
  const params = new Map<string, FloatTensorData>();
  let i = 0;
  for (const [name, shape] of shapes) {
    const data = uniform(rngFor(seed, 'reference-names-test', i++), tf.util.sizeFromShape(shape), -1, 1);
    params.set(name, { shape, data });
  }
  return params;
}

function bitsOf(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

describe('reference names', () => {
  beforeAll(async () => {
    await tf.setBackend('wasm');
  });

  it('round-trips internal → reference → internal bit for bit, NaN payloads and -0 included', () => {
    const shapes = tinyShapes();
    const params = randomParams(shapes);
    const cls = params.get('backbone.cls_token')!.data;
    new Uint32Array(cls.buffer)[0] = 0x7fa00001; // signalling NaN with a payload
    new Uint32Array(cls.buffer)[1] = 0x80000000; // -0
    const reference = toReference(params);
    const back = fromReference(reference, shapes);
    expect([...back.keys()]).toEqual([...shapes.keys()]);
    for (const [name, t] of params) expect(bitsOf(back.get(name)!)).toEqual(bitsOf(t.data));
  });

  it('uses the reference names and layouts', () => {
    const shapes = tinyShapes({ depth: 1 });
    const reference = toReference(randomParams(shapes));
    const layout = Object.fromEntries([...reference].map(([name, t]) => [name, t.shape]));
    expect(layout).toEqual({
      'backbone.cls_token': [1, 1, 4],
      'backbone.pos_embed': [1, 5, 4],
      'backbone.patch_embed.proj.weight': [4, 3, 2, 2],
      'backbone.patch_embed.proj.bias': [4],
      'backbone.blocks.0.norm1.weight': [4],
      'backbone.blocks.0.norm1.bias': [4],
      'backbone.blocks.0.attn.qkv.weight': [12, 4],
      'backbone.blocks.0.attn.qkv.bias': [12],
      'backbone.blocks.0.attn.proj.weight': [4, 4],
      'backbone.blocks.0.attn.proj.bias': [4],
      'backbone.blocks.0.norm2.weight': [4],
      'backbone.blocks.0.norm2.bias': [4],
      'backbone.blocks.0.mlp.fc1.weight': [16, 4],
      'backbone.blocks.0.mlp.fc1.bias': [16],
      'backbone.blocks.0.mlp.fc2.weight': [4, 16],
      'backbone.blocks.0.mlp.fc2.bias': [4],
      'backbone.norm.weight': [4],
      'backbone.norm.bias': [4],
      'head.mlp.0.weight': [6, 4],
      'head.mlp.0.bias': [6],
      'head.mlp.2.weight': [6, 6],
      'head.mlp.2.bias': [6],
      'head.mlp.4.weight': [5, 6],
      'head.mlp.4.bias': [5],
      'head.last_layer.weight_g': [7, 1],
      'head.last_layer.weight_v': [7, 5],
    });
    const backbone = toReference(randomParams(shapes), { prefix: 'backbone.' });
    expect([...backbone.keys()].slice(0, 7)).toEqual([
      'cls_token',
      'pos_embed',
      'patch_embed.proj.weight',
      'patch_embed.proj.bias',
      'blocks.0.norm1.weight',
      'blocks.0.norm1.bias',
      'blocks.0.attn.qkv.weight',
    ]);
    expect([...backbone.keys()].some((n) => n.startsWith('head.'))).toBe(false);
  });

  it('fuses q, k, v in that order, each transposed to out×in', () => {
    const shapes = tinyShapes({ depth: 1, dim: 3 });
    const params = randomParams(shapes);
    const reference = toReference(params);
    const qkv = reference.get('backbone.blocks.0.attn.qkv.weight')!;
    const bias = reference.get('backbone.blocks.0.attn.qkv.bias')!;
    const D = 3;
    ['q', 'k', 'v'].forEach((m, j) => {
      const w = params.get(`backbone.blocks.0.attn.${m}.weight`)!.data; // [in, out]
      const b = params.get(`backbone.blocks.0.attn.${m}.bias`)!.data;
      for (let out = 0; out < D; out++) {
        for (let inp = 0; inp < D; inp++) expect(qkv.data[(j * D + out) * D + inp]).toBe(w[inp * D + out]);
        expect(bias.data[j * D + out]).toBe(b[out]);
      }
    });
    // A Linear with the fused weight applied to x gives [q | k | v] of our separate layers.
    const x = new Float32Array([0.5, -1, 2]);
    const fused = Array.from({ length: 3 * D }, (_, r) =>
      x.reduce((s, xi, i) => s + qkv.data[r * D + i] * xi, 0),
    );
    ['q', 'k', 'v'].forEach((m, j) => {
      const w = params.get(`backbone.blocks.0.attn.${m}.weight`)!.data;
      for (let out = 0; out < D; out++) {
        const ours = x.reduce((s, xi, i) => s + xi * w[i * D + out], 0);
        expect(fused[j * D + out]).toBeCloseTo(ours, 6);
      }
    });
  });

  it('maps the patch embedding so that the conv on a patch equals our linear on the (py, px, c) row', () => {
    // Hand-built: C = 2, p = 2, D = 1; internal rows are ordered (py, px, c).
    const w = new Float32Array([10, 11, 12, 13, 14, 15, 16, 17]);
    const shapes = new Map([['backbone.patch_embed.proj.weight', [8, 1]]]);
    const ref = toReference(new Map([['backbone.patch_embed.proj.weight', { shape: [8, 1], data: w }]]), {
      inChans: 2,
    }).get('backbone.patch_embed.proj.weight')!;
    expect(ref.shape).toEqual([1, 2, 2, 2]);
    // [d][c][py][px]: channel 0 holds rows (0,0,0), (0,1,0), (1,0,0), (1,1,0) = 10, 12, 14, 16.
    expect(Array.from(ref.data)).toEqual([10, 12, 14, 16, 11, 13, 15, 17]);
    expect(
      Array.from(fromReference(new Map([['patch_embed.proj.weight', ref]]), shapes).values())[0],
    ).toEqual(w);

    // Random case: C = 3, p = 4, D = 5.
    const [C, p, D] = [3, 4, 5];
    const weight = uniform(rngFor(1, 'patch-weight'), p * p * C * D, -1, 1);
    const image = uniform(rngFor(2, 'patch-image'), C * p * p, -1, 1); // one patch, [C, p, p]
    const conv = toReference(
      new Map([['backbone.patch_embed.proj.weight', { shape: [p * p * C, D], data: weight }]]),
    ).get('backbone.patch_embed.proj.weight')!.data;
    for (let d = 0; d < D; d++) {
      let convOut = 0;
      let linearOut = 0;
      for (let c = 0; c < C; c++)
        for (let py = 0; py < p; py++)
          for (let px = 0; px < p; px++) {
            const pixel = image[(c * p + py) * p + px];
            convOut += conv[((d * C + c) * p + py) * p + px] * pixel;
            linearOut += pixel * weight[((py * p + px) * C + c) * D + d];
          }
      expect(convOut).toBeCloseTo(linearOut, 5);
    }
  });

  it('reads PyTorch state dicts with module./backbone. prefixes and backbone-only files', () => {
    const shapes = tinyShapes({ depth: 1 });
    const params = randomParams(shapes, 3);
    const ddp = new Map([...toReference(params)].map(([name, t]) => [`module.${name}`, t]));
    const back = fromReference(ddp, shapes);
    expect(bitsOf(back.get('head.mlp.2.weight')!)).toEqual(bitsOf(params.get('head.mlp.2.weight')!.data));

    const backboneShapes = new Map([...shapes].filter(([n]) => n.startsWith('backbone.')));
    const exported = toReference(params, { prefix: 'backbone.' });
    const backbone = fromReference(exported, backboneShapes);
    expect(backbone.size).toBe(backboneShapes.size);
    expect(bitsOf(backbone.get('backbone.blocks.0.attn.k.weight')!)).toEqual(
      bitsOf(params.get('backbone.blocks.0.attn.k.weight')!.data),
    );
    // A full teacher file into a backbone-only model: the head is unexpected unless allowed.
    expect(() => fromReference(toReference(params), backboneShapes)).toThrow(
      /unexpected: head\.mlp\.0\.weight \[6, 4\]/,
    );
    expect(fromReference(toReference(params), backboneShapes, { allowUnexpected: true }).size).toBe(
      backboneShapes.size,
    );
  });

  it('lists missing, unexpected and mis-shaped names with both shapes', () => {
    const shapes = tinyShapes({ depth: 1 });
    const reference = toReference(randomParams(shapes));
    reference.delete('backbone.norm.bias');
    reference.set('backbone.blocks.0.ls1.gamma', { shape: [4], data: new Float32Array(4) });
    reference.set('backbone.pos_embed', { shape: [1, 17, 4], data: new Float32Array(68) });
    let message = '';
    try {
      fromReference(reference, shapes);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('missing: backbone.norm.bias [4]');
    expect(message).toContain('unexpected: backbone.blocks.0.ls1.gamma [4]');
    expect(message).toContain('mis-shaped: backbone.pos_embed: file [1, 17, 4], expected [1, 5, 4]');

    const twice = new Map([
      ['cls_token', { shape: [1, 1, 4], data: new Float32Array(4) }],
      ['backbone.cls_token', { shape: [1, 1, 4], data: new Float32Array(4) }],
    ]);
    expect(() => fromReference(twice, new Map([['backbone.cls_token', [1, 1, 4]]]))).toThrow(/appears twice/);
  });

  it('exports tensors directly and handles models without q/k/v biases', () => {
    const shapes = tinyShapes({ depth: 1, qkvBias: false });
    const params = randomParams(shapes, 4);
    const tensors = new Map([...params].map(([name, t]) => [name, tf.tensor(t.data, t.shape)]));
    const reference = toReference(tensors);
    tf.dispose([...tensors.values()]);
    expect(reference.has('backbone.blocks.0.attn.qkv.bias')).toBe(false);
    expect(reference.get('backbone.blocks.0.attn.qkv.weight')!.shape).toEqual([12, 4]);
    const back = fromReference(reference, shapes);
    for (const [name, t] of params) expect(bitsOf(back.get(name)!)).toEqual(bitsOf(t.data));
  });

  it('rejects layouts it cannot express', () => {
    const shapes = new Map([['backbone.patch_embed.proj.weight', [10, 4]]]);
    expect(() => toReference(randomParams(shapes))).toThrow(
      /no reference layout \(not p·p·C rows with C = 3/,
    );
    const partial = new Map([
      ['backbone.blocks.0.attn.q.weight', [4, 4]],
      ['backbone.blocks.0.attn.k.weight', [4, 4]],
    ]);
    expect(() => toReference(randomParams(partial))).toThrow(
      /needs q, k and v, but "backbone.blocks.0.attn.v.weight"/,
    );
  });
});
