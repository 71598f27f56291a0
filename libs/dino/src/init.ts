import * as tf from '@tensorflow/tfjs-core';
import { resolveModelDims, type RunConfig } from '@dinoq/config';
import type { Params } from './params';
import { rngFor, truncatedNormal, uniform } from './rng';
import { mlpHiddenDim } from './vit/vit';
import { headLinearNames, headWidths } from './head';

type InitRule =
  | { kind: 'truncNormal'; std: number }
  | { kind: 'uniform'; bound: number }
  | { kind: 'constant'; value: number };

interface ParamSpec {
  shape: number[];
  init: InitRule;
}

const TRUNC_STD = 0.02;
const truncNormal: InitRule = { kind: 'truncNormal', std: TRUNC_STD };
const zeros: InitRule = { kind: 'constant', value: 0 };
const ones: InitRule = { kind: 'constant', value: 1 };

/**
 * Every student parameter in reference state-dict order, with its initialisation (spec §2.6,
 * §3). The positional table is sized for the global crop: N_ref = (globalCropSize / patch)².
 */
function paramSpecs(config: Pick<RunConfig, 'model' | 'head' | 'augment'>): Map<string, ParamSpec> {
  const { model, head } = config;
  const { embedDim: D, depth } = resolveModelDims(model);
  const p = model.patchSize;
  const grid = config.augment.globalCropSize / p;
  if (!Number.isInteger(grid)) {
    throw new Error(
      `augment.globalCropSize ${config.augment.globalCropSize} is not a multiple of model.patchSize ${p}`,
    );
  }
  const hidden = mlpHiddenDim(model, D);
  const fanIn = model.inChans * p * p;
  // PyTorch's Conv2d default (Kaiming-uniform, a = √5) reduces to U(±1/√fan_in) for the weight and the bias.
  const convDefault: InitRule = { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) };

  const specs = new Map<string, ParamSpec>();
  const add = (name: string, shape: number[], init: InitRule) => specs.set(name, { shape, init });
  add('backbone.cls_token', [1, 1, D], truncNormal);
  add('backbone.pos_embed', [1, grid * grid + 1, D], truncNormal);
  add('backbone.patch_embed.proj.weight', [fanIn, D], convDefault);
  add('backbone.patch_embed.proj.bias', [D], convDefault);
  for (let i = 0; i < depth; i++) {
    const b = `backbone.blocks.${i}`;
    add(`${b}.norm1.weight`, [D], ones);
    add(`${b}.norm1.bias`, [D], zeros);
    for (const m of ['q', 'k', 'v']) add(`${b}.attn.${m}.weight`, [D, D], truncNormal);
    if (model.qkvBias) for (const m of ['q', 'k', 'v']) add(`${b}.attn.${m}.bias`, [D], zeros);
    add(`${b}.attn.proj.weight`, [D, D], truncNormal);
    add(`${b}.attn.proj.bias`, [D], zeros);
    add(`${b}.norm2.weight`, [D], ones);
    add(`${b}.norm2.bias`, [D], zeros);
    add(`${b}.mlp.fc1.weight`, [D, hidden], truncNormal);
    add(`${b}.mlp.fc1.bias`, [hidden], zeros);
    add(`${b}.mlp.fc2.weight`, [hidden, D], truncNormal);
    add(`${b}.mlp.fc2.bias`, [D], zeros);
  }
  add('backbone.norm.weight', [D], ones);
  add('backbone.norm.bias', [D], zeros);
  const widths = headWidths(D, head);
  headLinearNames(head.nlayers).forEach((name, i) => {
    add(`${name}.weight`, [widths[i], widths[i + 1]], truncNormal);
    add(`${name}.bias`, [widths[i + 1]], zeros);
  });
  // The last layer is built after the reference's init hook: v keeps nn.Linear's default init.
  add('head.last_layer.weight_g', [head.outDim, 1], ones);
  add('head.last_layer.weight_v', [head.bottleneckDim, head.outDim], {
    kind: 'uniform',
    bound: 1 / Math.sqrt(head.bottleneckDim),
  });
  return specs;
}

/** Name → shape of every student (and teacher) parameter, in state-dict order. */
export function paramShapes(config: Pick<RunConfig, 'model' | 'head' | 'augment'>): Map<string, number[]> {
  return new Map([...paramSpecs(config)].map(([name, spec]) => [name, spec.shape]));
}

/** With normLastLayer the prototypes' scale g stays fixed at 1 (spec §3); everything else trains. */
export function isTrainable(name: string, config: Pick<RunConfig, 'head'>): boolean {
  return !(name === 'head.last_layer.weight_g' && config.head.normLastLayer);
}

function initialValues(name: string, spec: ParamSpec, seed: number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const { init } = spec;
  if (init.kind === 'constant') return new Float32Array(n).fill(init.value);
  // Keyed by name, so the backbone's values do not depend on the head's configuration.
  const rng = rngFor(seed, `init/${name}`);
  return init.kind === 'truncNormal'
    ? truncatedNormal(rng, n, init.std)
    : uniform(rng, n, -init.bound, init.bound);
}

/** Student parameters as variables, initialised from `seed`; the same seed gives the same values. */
export function initDinoParams(config: Pick<RunConfig, 'model' | 'head' | 'augment'>, seed: number): Params {
  const params: Params = new Map();
  for (const [name, spec] of paramSpecs(config)) {
    const value = tf.tensor(initialValues(name, spec, seed), spec.shape, 'float32');
    params.set(name, tf.variable(value, isTrainable(name, config)));
    value.dispose();
  }
  return params;
}

/**
 * An independent copy (e.g. the teacher: the student's values, `trainable` false). Values are
 * copied rather than shared so that no in-place update of one set can reach the other.
 */
export function cloneParams(params: ReadonlyMap<string, tf.Tensor>, trainable: boolean): Params {
  const out: Params = new Map();
  for (const [name, t] of params) {
    const value = tf.tensor(Float32Array.from(t.dataSync() as Float32Array), t.shape, 'float32');
    out.set(name, tf.variable(value, trainable));
    value.dispose();
  }
  return out;
}
