import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildProgram } from '../src/program';
import { parseAssignment, configFromFlags } from '../src/options';
import { readCheckpointFiles } from '../src/local-layout';
import { DinoTrainer } from '@dinoq/dino';
import { exportBackbone } from '@dinoq/eval';

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
    const runDir = path.join(dataDir, 'runs', 'r1');
    expect(fs.existsSync(path.join(runDir, 'checkpoints', '000000002', 'COMMITTED'))).toBe(true);
    expect(fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
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
    const lines = fs.readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(lines.map((l) => (JSON.parse(l) as { replicas: number }).replicas)).toEqual([1, 1, 2]);
    await expect(run('train', '--replicas', '0')).rejects.toThrow(
      /--replicas must be "auto" or an integer in \[1, 256\], got "0"/,
    );
    await expect(run('train', '--data-threads', '-1')).rejects.toThrow(/--data-threads must be "auto"/);
    const knn = await run('knn', '--data-dir', dataDir, '--run', 'r1', '--ks', '5,20');
    expect(knn).toMatch(/r1 teacher @ step 3: k=5 top1 \d+\.\d\d% top5/);
    expect(knn).toMatch(/k=20 top1/);
    expect(await run('knn', '--data-dir', dataDir, '--raw-pixels', '--ks', '10')).toMatch(
      /raw pixels: k=10 top1 (\d+)\.\d\d%/,
    );

    // The run's teacher exported under the reference names evaluates to the same scores.
    const config = JSON.parse(fs.readFileSync(path.join(runDir, 'run.json'), 'utf8')).config;
    const ckpt = readCheckpointFiles(path.join(runDir, 'checkpoints', '000000003'));
    const trainer = DinoTrainer.restore(config, 64, ckpt);
    const file = path.join(dataDir, 'backbone.safetensors');
    fs.writeFileSync(file, exportBackbone(trainer.teacher, config));
    trainer.dispose();
    const viaBackbone = await run('knn', '--data-dir', dataDir, '--backbone', file, '--ks', '5,20', ...tiny);
    expect(viaBackbone).toMatch(/^backbone backbone\.safetensors: k=5 top1/);
    expect(viaBackbone.replace(/^backbone backbone\.safetensors/gm, 'X')).toBe(
      knn.replace(/^r1 teacher @ step 3/gm, 'X'),
    );
  });
});
