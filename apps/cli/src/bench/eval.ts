import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveRunConfig, type PresetName, type RunConfig } from '@dinoq/config';
import { disposeParams, initDinoParams, selectBackend, type ParamTensors } from '@dinoq/dino';
import {
  FsBlobStore,
  imageAt,
  importClutteredFashionMnist,
  importFashionMnist,
  loadMasks,
  loadSplit,
  readManifest,
  type DecodedSplit,
} from '@dinoq/data';
import {
  centredBoxScore,
  exportAttentionMaps,
  extractFeatures,
  groundTruthAtEvalSize,
  importBackbone,
  linearProbe,
  segmentationScores,
  weightedKnn,
  type SegmentationScores,
  type SegmentationSplit,
} from '@dinoq/eval';
import { dataDir, LocalRun } from '../local-layout';
import { argValue, peakRssMiB } from './bench-data';

/**
 * npm run bench:eval [-- options]
 *
 *   --run-dir <dir>        a local run (<data dir>/runs/<id>, as `dinoq train` writes it): its
 *                          newest committed teacher
 *   --checkpoint <path>    a committed checkpoint folder of a local run (<run dir>/checkpoints/<step>;
 *                          config from the run's run.json, else --preset) or a backbone
 *                          .safetensors file (config from --preset)
 *   --preset <name>        config for random init / backbone files (default fmnist-tiny)
 *   --train-limit <n>      k-NN memory bank size (default all 60k)
 *   --test-limit <n>       k-NN queries (default all 10k)
 *   --attn-images <n>      images for the attention-export timing (default 64)
 *   --seg-limit <n>        images per segmentation set (default 1000)
 *   --skip-knn             only attention export and segmentation
 *   --linear-epochs <n>    also run the linear probe for n epochs (default 0: skipped)
 *   --linear-lr <lr>       its learning rate per 256 images (default 0.001, spec §12)
 *   --out <dir>            also write the attention export's PNGs and index.json there
 *
 * Prints the backend, seconds and images/s for feature extraction over Fashion-MNIST and for the
 * weighted k-NN (bank = train, queries = test), attention-export images/s, Jaccard scores of the
 * 60 %-mass attention masks on cluttered and plain Fashion-MNIST for the given checkpoint (if
 * any), a random-init network and the centred-box baseline, and the peak RSS.
 */

function intArg(name: string, fallback?: number): number | undefined {
  const v = argValue(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${v}"`);
  return n;
}

const seconds = (t0: number) => (Date.now() - t0) / 1000;

interface Network {
  label: string;
  params: ParamTensors;
  config: RunConfig;
  dispose: () => void;
}

async function loadCheckpointNetwork(preset: PresetName): Promise<Network | null> {
  const runDirArg = argValue('run-dir');
  const checkpointArg = argValue('checkpoint');
  if (!runDirArg && !checkpointArg) return null;
  if (checkpointArg?.endsWith('.safetensors')) {
    const config = resolveRunConfig(preset);
    const params = importBackbone(new Uint8Array(fs.readFileSync(checkpointArg)), config);
    return {
      label: `backbone ${path.basename(checkpointArg)}`,
      params,
      config,
      dispose: () => params.forEach((v) => v.dispose()),
    };
  }
  let run: LocalRun;
  let step: number | null;
  if (checkpointArg) {
    run = LocalRun.at(path.join(checkpointArg, '..', '..'));
    step = Number(path.basename(path.resolve(checkpointArg)));
  } else {
    run = LocalRun.at(runDirArg!);
    step = await run.artifacts.newestCommit();
    if (step === null) throw new Error(`--run-dir ${runDirArg}: no committed checkpoint`);
  }
  const config = (await run.record())?.config ?? resolveRunConfig(preset);
  const params = await run.network(step, 'teacher', config);
  return {
    label: `checkpoint step ${step}`,
    params,
    config,
    dispose: () => disposeParams(params),
  };
}

/** Fashion-MNIST from the local data folder, else imported from the Debian package into `tmp`. */
async function fashionMnist(tmp: string, trainLimit?: number, testLimit?: number) {
  const local = dataDir();
  let store = new FsBlobStore(local);
  if (!fs.existsSync(path.join(local, 'datasets', 'fmnist', 'manifest.json'))) {
    store = new FsBlobStore(tmp);
    const t0 = Date.now();
    const limit =
      trainLimit !== undefined && testLimit !== undefined ? Math.max(trainLimit, testLimit) : undefined;
    await importFashionMnist({ store, name: 'fmnist', limit });
    console.log(`imported Fashion-MNIST into ${tmp} in ${seconds(t0).toFixed(1)} s`);
  }
  const manifest = await readManifest(store, 'fmnist');
  const train = await loadSplit(store, manifest, 'train', { limit: trainLimit });
  const test = await loadSplit(store, manifest, 'test', { limit: testLimit });
  return { train, test, numClasses: manifest.classes.length };
}

function formatSeg(label: string, s: SegmentationScores): string {
  const heads = s.heads.map((j) => j.toFixed(3)).join(' ');
  return (
    `  ${label.padEnd(22)} mean-map ${s.mean.toFixed(3)}  best head ${s.bestHead.head} ${s.bestHead.jaccard.toFixed(3)}` +
    `  heads [${heads}]  mask area ${(100 * s.maskArea.mean).toFixed(0)}%`
  );
}

async function main(): Promise<void> {
  const preset = argValue('preset', 'fmnist-tiny') as PresetName;
  const trainLimit = intArg('train-limit');
  const testLimit = intArg('test-limit');
  const attnImages = intArg('attn-images', 64)!;
  const segLimit = intArg('seg-limit', 1000)!;
  const skipKnn = process.argv.includes('--skip-knn');
  const linearEpochs = intArg('linear-epochs', 0)!;
  const linearLr = Number(argValue('linear-lr', '0.001'));
  const outDir = argValue('out');

  const backend = await selectBackend();
  console.log(`backend ${backend.name} (${backend.kernels}): ${backend.detail}`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-bench-eval-'));
  const summary: Record<string, unknown> = { backend: backend.name, kernels: backend.kernels };
  const checkpoint = await loadCheckpointNetwork(preset);
  const randomConfig = checkpoint?.config ?? resolveRunConfig(preset);
  const randomParams = initDinoParams(randomConfig, randomConfig.train.seed);
  const random: Network = {
    label: `random init (seed ${randomConfig.train.seed})`,
    params: randomParams,
    config: randomConfig,
    dispose: () => randomParams.forEach((v) => v.dispose()),
  };
  const timed = checkpoint ?? random;
  console.log(`network for timings: ${timed.label}`);
  try {
    const { train, test, numClasses } = await fashionMnist(tmp, trainLimit, testLimit);

    if (!skipKnn) {
      let t0 = Date.now();
      const bank = await extractFeatures(timed.params, train, { config: timed.config });
      const queries = await extractFeatures(timed.params, test, { config: timed.config });
      const extractS = seconds(t0);
      const images = bank.count + queries.count;
      t0 = Date.now();
      const scores = weightedKnn(bank, queries, { numClasses });
      const knnS = seconds(t0);
      console.log(
        `features: ${images} images (${bank.count} train + ${queries.count} test) in ${extractS.toFixed(1)} s` +
          ` = ${(images / extractS).toFixed(0)} img/s, dim ${bank.dim}`,
      );
      console.log(
        `k-NN: ${knnS.toFixed(1)} s for ${queries.count} queries × ${bank.count} bank; ` +
          scores.map((s) => `k=${s.k} top1 ${s.top1.toFixed(2)}%`).join(', '),
      );
      summary.features = { images, seconds: extractS, imagesPerSecond: images / extractS, dim: bank.dim };
      summary.knn = { seconds: knnS, bank: bank.count, queries: queries.count, scores };
    }

    if (linearEpochs > 0) {
      const t0 = Date.now();
      const probe = await linearProbe(timed.params, timed.config, train, test, {
        epochs: linearEpochs,
        lr: linearLr,
        numClasses,
      });
      const s = seconds(t0);
      console.log(
        `linear probe: ${linearEpochs} epochs on ${probe.featureDim}-d features (last 4 [CLS]), lr ${linearLr}, in ${s.toFixed(1)} s;` +
          ` best top1 ${probe.top1.toFixed(2)}% (epoch ${probe.bestEpoch}), top5 ${probe.top5.toFixed(2)}%`,
      );
      summary.linear = { seconds: s, ...probe, curve: undefined };
    }

    if (attnImages > 0) {
      const count = Math.min(attnImages, test.count);
      const images = Array.from({ length: count }, (_, i) => ({
        ...imageAt(test, i),
        channels: test.channels,
        name: `test-${i}`,
      }));
      const t0 = Date.now();
      const exported = await exportAttentionMaps(timed.params, timed.config, images);
      const s = seconds(t0);
      const files = Object.keys(exported.files).length;
      console.log(
        `attention export: ${count} images (${files} PNGs) in ${s.toFixed(2)} s = ${(count / s).toFixed(1)} img/s`,
      );
      summary.attentionExport = { images: count, files, seconds: s, imagesPerSecond: count / s };
      if (outDir) {
        fs.mkdirSync(outDir, { recursive: true });
        for (const [name, bytes] of Object.entries(exported.files))
          fs.writeFileSync(path.join(outDir, name), bytes);
        fs.writeFileSync(path.join(outDir, 'index.json'), JSON.stringify(exported.index, null, 2) + '\n');
        console.log(`  written to ${outDir}`);
      }
    }

    if (segLimit > 0) {
      const store = new FsBlobStore(tmp);
      let t0 = Date.now();
      const clutteredManifest = await importClutteredFashionMnist({
        store,
        name: 'fmnist-cluttered',
        limit: segLimit,
        splits: ['test'],
      });
      const cluttered: SegmentationSplit = {
        ...(await loadSplit(store, clutteredManifest, 'test')),
        masks: (await loadMasks(store, clutteredManifest, 'test')).masks,
      };
      console.log(
        `cluttered Fashion-MNIST: ${cluttered.count} test images, 48 px, built in ${seconds(t0).toFixed(1)} s`,
      );
      const plain: DecodedSplit = { ...test, count: Math.min(segLimit, test.count) };
      const sets: [string, SegmentationSplit][] = [
        ['cluttered', cluttered],
        ['plain', plain],
      ];
      const segSummary: Record<string, unknown> = {};
      for (const [name, split] of sets) {
        console.log(`segmentation on ${name} (${split.count} images, 60% mass, Jaccard vs ground truth):`);
        const entry: Record<string, unknown> = {};
        for (const net of checkpoint ? [checkpoint, random] : [random]) {
          t0 = Date.now();
          const s = await segmentationScores(net.params, net.config, split);
          console.log(`${formatSeg(net.label, s)}  (${seconds(t0).toFixed(1)} s)`);
          entry[net === checkpoint ? 'checkpoint' : 'random'] = s;
        }
        const size = timed.config.augment.globalCropSize;
        const box = centredBoxScore(groundTruthAtEvalSize(split, size, split.count), size);
        console.log(
          `  ${'centred box'.padEnd(22)} ${box.jaccard.toFixed(3)}  (side ${box.side} of ${size} px = mean foreground area ${(100 * box.areaFraction).toFixed(0)}%)`,
        );
        entry.centredBox = box;
        segSummary[name] = entry;
      }
      summary.segmentation = segSummary;
    }
    summary.peakRssMiB = peakRssMiB();
    console.log(`peak RSS ${peakRssMiB().toFixed(0)} MiB`);
    console.log(`summary ${JSON.stringify(summary)}`);
  } finally {
    checkpoint?.dispose();
    random.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
