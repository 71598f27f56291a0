import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveRunConfig, type RunConfig } from '@dinoq/config';
import {
  DataParallelTrainer,
  disposeParams,
  initDinoParams,
  networkParams,
  resolveReplicas,
  selectBackend,
  type ParamTensors,
} from '@dinoq/dino';
import { FsBlobStore, importFashionMnist, loadSplit, readManifest, type DecodedSplit } from '@dinoq/data';
import { extractFeatures, rawPixelFeatures, weightedKnn, type FeatureSet } from '@dinoq/eval';
import { trainLoop } from '../train-loop';
import { mergeConfig } from '@dinoq/config';
import { parseAssignment, replicaSetting } from '../options';
import { argValue, peakRssMiB } from './bench-data';

/**
 * npm run bench:quality [-- --epochs 1 | --minutes 20] [--train-limit n] [--bank-limit n] [--test-limit n]
 *                       [--replicas auto|n] [--set path=value ...]
 *
 * Imports Fashion-MNIST from the Debian package, trains fmnist-tiny, then prints weighted k-NN
 * top-1 (k = 20, T = 0.07) on the test split for the trained teacher, for a randomly initialised
 * network and for raw pixels — all with the same protocol and the same images.
 */
async function main(): Promise<void> {
  const epochs = Number(argValue('epochs', '1'));
  const minutes = argValue('minutes') ? Number(argValue('minutes')) : undefined;
  const trainLimit = argValue('train-limit') ? Number(argValue('train-limit')) : undefined;
  const bankLimit = argValue('bank-limit') ? Number(argValue('bank-limit')) : undefined;
  const testLimit = argValue('test-limit') ? Number(argValue('test-limit')) : undefined;
  const backend = await selectBackend();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-quality-'));
  const store = new FsBlobStore(root);
  let t0 = Date.now();
  await importFashionMnist({ store, name: 'fmnist' });
  const manifest = await readManifest(store, 'fmnist');
  const train = await loadSplit(store, manifest, 'train');
  const test = await loadSplit(store, manifest, 'test', { limit: testLimit });
  console.log(
    `imported + decoded Fashion-MNIST (${train.count} train, ${test.count} test) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );

  // Short runs keep the preset's warm-up share (a tenth of the schedule) rather than its absolute length.
  let overrides: unknown = { train: { epochs }, optim: { warmupEpochs: epochs / 10 } };
  // --set path=value (repeatable) tries other settings against the same protocol.
  process.argv.forEach((a, i) => {
    if (a === '--set') overrides = mergeConfig(overrides, parseAssignment(process.argv[i + 1]));
  });
  const config = resolveRunConfig('fmnist-tiny', overrides);
  console.log(
    `config: ${JSON.stringify({ model: config.model, head: config.head, loss: config.loss, optim: config.optim, augment: config.augment })}`,
  );
  const trainSet: DecodedSplit = trainLimit ? { ...train, count: Math.min(trainLimit, train.count) } : train;
  const replicas = resolveReplicas(
    replicaSetting(argValue('replicas', 'auto')!),
    backend,
    config.train.batchSize,
  );
  const trainer = await DataParallelTrainer.create(config, trainSet.count, {
    replicas,
    backend: backend.name,
  });
  t0 = Date.now();
  const res = await trainLoop({
    trainer,
    split: trainSet,
    minutes,
    onStep: (m) => {
      if (m.step % 25 === 0)
        console.log(
          `step ${m.step}/${trainer.totalSteps} loss ${m.loss.toFixed(4)} H(t) ${m.teacherEntropy.toFixed(3)} KL ${m.klTeacherStudent.toFixed(3)} ${m.imagesPerSecond.toFixed(1)} img/s`,
        );
    },
  });
  const trainSeconds = (Date.now() - t0) / 1000;
  const first = res.metrics[0];
  const last = res.metrics.at(-1)!;
  console.log(
    `trained ${res.steps} steps (${((res.steps * config.train.batchSize) / trainSet.count).toFixed(2)} epochs of ${trainSet.count} images) in ${trainSeconds.toFixed(0)} s on ${backend.name} × ${replicas}; loss ${first.loss.toFixed(4)} → ${last.loss.toFixed(4)}`,
  );

  const knn = (bank: FeatureSet, queries: FeatureSet) =>
    weightedKnn(bank, queries, { numClasses: manifest.classes.length, ks: [20] })[0];
  const evalParams = async (params: ParamTensors, cfg: RunConfig) => {
    const bank = await extractFeatures(params, train, { config: cfg, limit: bankLimit });
    return knn(bank, await extractFeatures(params, test, { config: cfg }));
  };
  t0 = Date.now();
  const teacher = networkParams(config, await trainer.checkpointFiles(), 'teacher');
  const trainedStep = trainer.step;
  await trainer.dispose();
  const trained = await evalParams(teacher, config);
  const evalSeconds = (Date.now() - t0) / 1000;
  disposeParams(teacher);
  const randomParams = initDinoParams(config, config.train.seed);
  const random = await evalParams(randomParams, config);
  randomParams.forEach((v) => v.dispose());
  const pixels = knn(rawPixelFeatures(train, bankLimit), rawPixelFeatures(test));

  const bankCount = Math.min(bankLimit ?? train.count, train.count);
  console.log(
    `\nweighted k-NN, k = 20, T = 0.07, bank ${bankCount} train images, ${test.count} test queries:`,
  );
  console.log(
    `  trained teacher (step ${trainedStep}): top-1 ${trained.top1.toFixed(2)}%  top-5 ${trained.top5.toFixed(2)}%`,
  );
  console.log(
    `  random init:                top-1 ${random.top1.toFixed(2)}%  top-5 ${random.top5.toFixed(2)}%`,
  );
  console.log(
    `  raw pixels:                 top-1 ${pixels.top1.toFixed(2)}%  top-5 ${pixels.top5.toFixed(2)}%`,
  );
  console.log(
    `feature extraction + k-NN for the trained network: ${evalSeconds.toFixed(0)} s; peak RSS ${peakRssMiB().toFixed(0)} MiB`,
  );
  fs.rmSync(root, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
