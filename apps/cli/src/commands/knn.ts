import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { RunConfig } from '@dinoq/config';
import { disposeParams, selectBackend, type ParamTensors } from '@dinoq/dino';
import {
  extractFeatures,
  importBackbone,
  knnBaselines,
  randomInitParams,
  rawPixelFeatures,
  weightedKnn,
  type FeatureSet,
  type KnnBaselines,
  type KnnScore,
} from '@dinoq/eval';
import { knnLines } from '@dinoq/jobs';
import type { DecodedSplit } from '@dinoq/data';
import { configFromFlags, positiveInt, collect, type ConfigFlags } from '../options';
import { dataDir, LocalRun } from '../local-layout';
import { loadLocalSplit } from '../dataset';
import { logger } from '../logger';

interface KnnFlags extends ConfigFlags {
  run?: string;
  backbone?: string;
  randomInit?: boolean;
  rawPixels?: boolean;
  network: 'teacher' | 'student';
  dataset: string;
  dataDir?: string;
  trainLimit?: number;
  testLimit?: number;
  ks: string;
  temperature: number;
  baselines: boolean;
}

export type Features = (split: DecodedSplit, limit?: number) => Promise<FeatureSet>;

/** Which features to evaluate: a run's checkpoint, a randomly initialised network, or raw pixels. */
export async function featuresFor(
  o: KnnFlags,
  root: string,
): Promise<{ label: string; features: Features; dispose: () => void; config?: RunConfig }> {
  if (o.rawPixels)
    return { label: 'raw pixels', features: async (s, l) => rawPixelFeatures(s, l), dispose: () => {} };
  let config: RunConfig;
  let params: ParamTensors;
  let dispose: () => void;
  let label: string;
  if (o.run) {
    const run = new LocalRun(root, o.run);
    const step = await run.artifacts.newestCommit();
    if (step === null) throw new Error(`run "${o.run}" has no committed checkpoint in ${run.dir}`);
    config = (await run.requireRecord()).config;
    const network = await run.network(step, o.network, config);
    params = network;
    dispose = () => disposeParams(network);
    label = `${o.run} ${o.network} @ step ${step}`;
  } else if (o.backbone) {
    // A backbone under the reference names (e.g. converted from a published DINO checkpoint):
    // evaluated without any training, with the architecture given by --preset/--set.
    config = configFromFlags(o);
    params = importBackbone(new Uint8Array(fs.readFileSync(o.backbone)), config);
    dispose = () => params.forEach((v) => v.dispose());
    label = `backbone ${path.basename(o.backbone)}`;
  } else if (o.randomInit) {
    config = configFromFlags(o);
    const random = randomInitParams(config);
    // A baseline itself: no baselines beside it.
    return {
      label: `random init (seed ${config.train.seed})`,
      features: (split, limit) => extractFeatures(random, split, { config, limit }),
      dispose: () => disposeParams(random),
    };
  } else {
    throw new Error('pass --run <id>, --backbone <file>, --random-init or --raw-pixels');
  }
  return {
    label,
    features: (split, limit) => extractFeatures(params, split, { config, limit }),
    dispose,
    // A trained network is read against the random network of its architecture and raw pixels.
    config,
  };
}

/** One line per k, the trained score beside its baselines when they were computed. */
export function formatScores(label: string, scores: KnnScore[], baselines?: KnnBaselines): string {
  return (
    knnLines(scores, baselines)
      .map((line) => `${label}: ${line}`)
      .join('\n') + '\n'
  );
}

export function registerKnn(program: Command): void {
  program
    .command('knn')
    .description('Weighted k-NN evaluation (teacher [CLS], L2-normalised, T = 0.07) on the test split')
    .option('--run <id>', 'evaluate the newest committed checkpoint of this run')
    .option('--network <which>', 'teacher or student', 'teacher')
    .option(
      '--backbone <file>',
      'evaluate a reference-named backbone .safetensors (architecture from --preset/--set)',
    )
    .option('--random-init', 'evaluate a randomly initialised network (config from --preset/--set)')
    .option('--raw-pixels', 'evaluate raw pixels with the same protocol')
    .option('--preset <name>', 'config preset for --random-init and --backbone', 'fmnist-tiny')
    .option('--set <path=value>', 'config override for --random-init and --backbone (repeatable)', collect)
    .option('--dataset <name>', 'dataset name', 'fmnist')
    .option('--data-dir <dir>', 'local storage root (default $DINOQ_DATA_DIR or .data)')
    .option('--train-limit <n>', 'memory bank: first n train images', positiveInt('--train-limit'))
    .option('--test-limit <n>', 'queries: first n test images', positiveInt('--test-limit'))
    .option('--ks <list>', 'comma-separated k values', '10,20,100,200')
    .option('--temperature <t>', 'vote temperature', Number, 0.07)
    .option('--no-baselines', 'skip the random-init and raw-pixel scores printed beside a trained score')
    .action(async (o: KnnFlags) => {
      const backend = await selectBackend();
      const root = dataDir(o.dataDir);
      const train = await loadLocalSplit(root, o.dataset, 'train', o.trainLimit);
      const test = await loadLocalSplit(root, o.dataset, 'test', o.testLimit);
      const f = await featuresFor(o, root);
      try {
        const t0 = Date.now();
        const bank = await f.features(train);
        const queries = await f.features(test);
        const protocol = {
          numClasses: Math.max(...train.labels) + 1,
          ks: o.ks.split(',').map(Number),
          temperature: o.temperature,
        };
        const scores = weightedKnn(bank, queries, protocol);
        const baselines =
          o.baselines && f.config
            ? await knnBaselines(f.config, { train: async () => train, test: async () => test }, protocol)
            : undefined;
        logger.info(
          {
            backend: backend.name,
            seconds: (Date.now() - t0) / 1000,
            train: bank.count,
            test: queries.count,
          },
          'k-NN done',
        );
        process.stdout.write(formatScores(f.label, scores, baselines));
      } finally {
        f.dispose();
      }
    });
}
