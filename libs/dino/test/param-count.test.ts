import { parameterCount, resolveRunConfig, type PresetName } from '@dinoq/config';
import { isTrainable, paramShapes } from '../src/init';

/** The pure count the API admits runs with must equal what the model actually initialises. */
function initialised(config: ReturnType<typeof resolveRunConfig>) {
  let student = 0;
  let trainable = 0;
  for (const [name, shape] of paramShapes(config)) {
    const size = shape.reduce((a, b) => a * b, 1);
    student += size;
    if (isTrainable(name, config)) trainable += size;
  }
  return { student, trainable };
}

describe('parameterCount against the initialised model', () => {
  const cases: [string, PresetName, object][] = [
    ['fmnist-tiny', 'fmnist-tiny', {}],
    ['bench-ref', 'bench-ref', {}],
    ['vit_small_p16', 'vit_small_p16', {}],
    [
      'no qkv bias, one-layer head, free g',
      'fmnist-tiny',
      { model: { qkvBias: false, mlpRatio: 2.7 }, head: { nlayers: 1, normLastLayer: false } },
    ],
  ];
  it.each(cases)('%s', (_, preset, overrides) => {
    const config = resolveRunConfig(preset, overrides);
    const { student, trainable } = parameterCount(config);
    expect({ student, trainable }).toEqual(initialised(config));
  });
});
