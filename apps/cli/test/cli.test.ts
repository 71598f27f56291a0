import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProgram } from '../src/program';
import { parseAssignment, configFromFlags } from '../src/options';
import { LocalRun } from '../src/local-layout';
import { FsBlobStore, loadSplit, packTar, readManifest } from '@dinoq/data';
import sharp from 'sharp';
import { DinoTrainer } from '@dinoq/dino';
import { exportBackbone } from '@dinoq/eval';
import { parseMetricsFiles } from '@dinoq/jobs';
import { readCheckpointCommit } from '@dinoq/storage';

async function run(...args: string[]): Promise<string> {
  let out = '';
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  try {
    await buildProgram()
      .exitOverride()
      .parseAsync(['node', 'dinoq', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

const tiny = [
  '--set',
  'model.depth=1',
  '--set',
  'model.embedDim=16',
  '--set',
  'model.numHeads=2',
  '--set',
  'head={"outDim":64,"hiddenDim":32,"bottleneckDim":16}',
  '--set',
  'augment.localCropsNumber=2',
  '--set',
  'train.batchSize=16',
  '--set',
  'train.epochs=2',
];

describe('dinoq CLI', () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-cli-'));

  it('parses --set assignments and validates the merged config', () => {
    expect(parseAssignment('train.epochs=3')).toEqual({ train: { epochs: 3 } });
    expect(parseAssignment('model.gelu=tanh')).toEqual({ model: { gelu: 'tanh' } });
    expect(() => parseAssignment('oops')).toThrow(/path=value/);
    expect(configFromFlags({ preset: 'fmnist-tiny', set: ['train.epochs=3'] }).train.epochs).toBe(3);
    expect(() => configFromFlags({ preset: 'fmnist-tiny', set: ['optim.lr=-1'] })).toThrow(/optim\.lr/);
    expect(() => configFromFlags({ preset: 'nope' })).toThrow(/unknown preset "nope"/);
  });

  it('imports WebDataset tars with resize and class names, and names a bad --resize', async () => {
    const image = (grey: number) =>
      sharp({ create: { width: 6, height: 4, channels: 3, background: { r: grey, g: grey, b: grey } } })
        .png()
        .toBuffer();
    const tarFile = path.join(dataDir, 'wds.tar');
    fs.writeFileSync(
      tarFile,
      await packTar([
        { name: 'a.png', body: await image(40) },
        { name: 'a.cls', body: Buffer.from('1') },
        { name: 'b.cls', body: Buffer.from('x') },
        { name: 'b.png', body: await image(80) },
        { name: 'c.png', body: await image(120) },
        { name: 'c.cls', body: Buffer.from('0') },
      ]),
    );
    const classesFile = path.join(dataDir, 'classes.txt');
    fs.writeFileSync(classesFile, 'shirt\nboot\n');
    const args = ['import-webdataset', tarFile, '--name', 'wds', '--data-dir', dataDir];
    expect(await run(...args, '--resize', '3x3', '--classes', classesFile, '--channels', '1')).toBe(
      `imported wds/train: 2 images, 1 skipped, 2 classes into ${dataDir}/datasets/wds\n`,
    );
    const store = new FsBlobStore(dataDir);
    const manifest = await readManifest(store, 'wds');
    expect(manifest).toMatchObject({
      classes: ['shirt', 'boot'],
      imageSize: { width: 3, height: 3, channels: 1 },
    });
    const data = await loadSplit(store, manifest, 'train');
    expect(Array.from(data.labels)).toEqual([1, 0]);
    expect([data.images[0], data.images[9]]).toEqual([40, 120]);
    await expect(run(...args, '--resize', '3by3')).rejects.toThrow(
      '--resize must be WxH with positive integers, got "3by3"',
    );
  });

  it('imports Fashion-MNIST, trains, resumes and evaluates with k-NN', async () => {
    expect(await run('import-fmnist', '--data-dir', dataDir, '--limit', '64')).toMatch(
      /imported fmnist: train 64, test 64/,
    );
    const trained = await run(
      'train',
      '--data-dir',
      dataDir,
      '--run',
      'r1',
      '--steps',
      '2',
      '--no-progress',
      '--replicas',
      '1',
      '--data-threads',
      '1',
      ...tiny,
    );
    expect(trained).toMatch(/run r1: 8 steps \(4\/epoch\), backend wasm, 1 replica, 1 augmentation thread/);
    expect(trained).toMatch(/trained 2 steps to step 2/);
    // The bucket's key layout under the data folder: checkpoints/<step>/ with COMMITTED last, and
    // the metrics of the steps each commit covers.
    const runDir = path.join(dataDir, 'runs', 'r1');
    const local = new LocalRun(dataDir, 'r1');
    expect(fs.readdirSync(path.join(runDir, 'checkpoints'))).toEqual(['000000002']);
    const commit = await readCheckpointCommit(new FsBlobStore(dataDir), 'r1', 2);
    expect(commit).toMatchObject({ format: 'dinoq.checkpoint-commit/1', runId: 'r1', step: 2 });
    expect(Object.keys(commit!.files).sort()).toEqual(
      fs.readdirSync(path.join(runDir, 'checkpoints', '000000002')).filter((f) => f !== 'COMMITTED'),
    );
    expect(fs.readdirSync(path.join(runDir, 'metrics'))).toEqual(['steps-000000000.jsonl']);
    const metricLines = async () => parseMetricsFiles(await local.artifacts.metricsFiles());
    expect((await metricLines()).lines.map((line) => line.step)).toEqual([0, 1]);
    await expect(
      run('train', '--data-dir', dataDir, '--run', 'r1', '--steps', '1', '--no-progress'),
    ).rejects.toThrow(/already exists.*--resume/);
    // The run resumes on two replicas (the checkpoint does not depend on the replica count).
    const resumed = await run(
      'train',
      ...['--data-dir', dataDir, '--run', 'r1', '--resume', '--steps', '1', '--no-progress'],
      ...['--replicas', '2', '--data-threads', '0'],
    );
    expect(resumed).toMatch(/backend wasm, 2 replicas, 0 augmentation thread/);
    expect(resumed).toMatch(/trained 1 steps to step 3/);
    const { lines, skipped } = await metricLines();
    expect(skipped).toEqual([]);
    expect(lines.map((line) => [line.step, line.replicas, line.dataThreads])).toEqual([
      [0, 1, 1],
      [1, 1, 1],
      [2, 2, 0],
    ]);
    expect(fs.readdirSync(path.join(runDir, 'metrics'))).toEqual([
      'steps-000000000.jsonl',
      'steps-000000002.jsonl',
    ]);
    await expect(run('train', '--replicas', '0')).rejects.toThrow(
      /--replicas must be "auto" or an integer in \[1, 256\], got "0"/,
    );
    await expect(run('train', '--data-threads', '-1')).rejects.toThrow(/--data-threads must be "auto"/);
    const knn = await run('knn', '--data-dir', dataDir, '--run', 'r1', '--ks', '5,20');
    // A trained network's scores come with the random network's and raw pixels' beside them.
    expect(knn).toMatch(/r1 teacher @ step 3: k=5 top-1 \d+\.\d % \(random \d+\.\d %, pixels \d+\.\d %\)/);
    expect(knn).toMatch(/k=20 top-1 \d+\.\d % \(random/);
    expect(await run('knn', '--data-dir', dataDir, '--raw-pixels', '--ks', '10')).toMatch(
      /raw pixels: k=10 top-1 \d+\.\d %\n/,
    );

    // The run's teacher exported under the reference names evaluates to the same scores.
    const config = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')).config;
    const ckpt = await local.artifacts.loadCheckpoint(3);
    const trainer = DinoTrainer.restore(config, 64, ckpt.files);
    const file = path.join(dataDir, 'backbone.safetensors');
    fs.writeFileSync(file, exportBackbone(trainer.teacher, config));
    trainer.dispose();
    const viaBackbone = await run('knn', '--data-dir', dataDir, '--backbone', file, '--ks', '5,20', ...tiny);
    expect(viaBackbone).toMatch(/^backbone backbone\.safetensors: k=5 top-1/);
    expect(viaBackbone.replace(/^backbone backbone\.safetensors/gm, 'X')).toBe(
      knn.replace(/^r1 teacher @ step 3/gm, 'X'),
    );
  });
});
