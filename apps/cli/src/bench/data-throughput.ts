import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveRunConfig, type RunConfig } from '@dinoq/config';
import {
  AugmentPool,
  FsBlobStore,
  importFashionMnist,
  itersPerEpoch,
  loadSplit,
  ShardCache,
  splitOf,
  StreamingSampleOrder,
  StreamingSplitReader,
  trainingBatch,
  type DatasetManifest,
} from '@dinoq/data';
import { DataParallelTrainer, selectBackend, type ReplicatedTrainer } from '@dinoq/dino';
import { checkpointDigest, trainStreamed, trainTimed, WARMUP_STEPS, type TimedRun } from './data-train';

/**
 * `npm run bench:data -- --streaming-vs-memory [--train-limit 6400] [--tp-steps 100]`: training
 * throughput of the fmnist-tiny preset with its split held decoded in memory and with it streamed
 * from its shards, built as the worker builds them (apps/worker/src/compute/training-data.ts): one
 * replica, one augmentation thread, the streamed sample order in both. Both therefore train on the
 * same batches and must end in the same state.
 */

const DATASET = 'fmnist';
const SHARD_SIZE = 1000;
const CACHE_BYTES = 64 * 2 ** 20;

interface PathRun extends TimedRun {
  /** Covers the student, the teacher, the center and the step. */
  stateChecksum: string;
  checkpointSha256: string;
}

async function finish(trainer: ReplicatedTrainer, run: TimedRun): Promise<PathRun> {
  const [stateChecksum] = await trainer.replicaChecksums();
  return { ...run, stateChecksum, checkpointSha256: checkpointDigest(await trainer.checkpointFiles()) };
}

async function inMemory(
  store: FsBlobStore,
  manifest: DatasetManifest,
  config: RunConfig,
  steps: number,
): Promise<PathRun> {
  const data = await loadSplit(store, manifest, 'train');
  const { seed, batchSize } = config.train;
  const order = StreamingSampleOrder.forSplit(splitOf(manifest, 'train'), seed);
  const pool = AugmentPool.start(data, 1);
  const trainer = await DataParallelTrainer.create(config, data.count, { replicas: 1 });
  try {
    const sampling = { seed, batchSize, pool, order };
    const run = await trainTimed(
      trainer,
      (step) => trainingBatch(data, config.augment, sampling, step),
      steps,
    );
    return await finish(trainer, run);
  } finally {
    await Promise.all([trainer.dispose(), pool.close()]);
  }
}

async function streamed(
  store: FsBlobStore,
  manifest: DatasetManifest,
  config: RunConfig,
  steps: number,
  cacheDir: string,
): Promise<PathRun> {
  const split = splitOf(manifest, 'train');
  const cache = await ShardCache.open({ store, dataset: DATASET, dir: cacheDir, maxBytes: CACHE_BYTES });
  const order = StreamingSampleOrder.forSplit(split, config.train.seed);
  const reader = new StreamingSplitReader({ manifest, split: 'train', cache, order });
  try {
    return await trainStreamed(reader, config, steps, finish);
  } finally {
    await cache.idle();
  }
}

export async function streamingVsMemoryBench(trainLimit: number, steps: number): Promise<void> {
  if (steps <= WARMUP_STEPS) throw new Error(`--tp-steps must exceed the ${WARMUP_STEPS} warm-up steps`);
  const config = resolveRunConfig('fmnist-tiny');
  const { batchSize, epochs } = config.train;
  const total = itersPerEpoch(trainLimit, batchSize) * epochs;
  if (steps > total)
    throw new Error(
      `--tp-steps ${steps} exceeds fmnist-tiny's ${total} steps on ${trainLimit} images: raise --train-limit`,
    );
  const backend = await selectBackend();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-bench-tp-'));
  try {
    const store = new FsBlobStore(root);
    const manifest = await importFashionMnist({
      store,
      name: DATASET,
      limit: trainLimit,
      shardSize: SHARD_SIZE,
    });
    const split = splitOf(manifest, 'train');
    console.log(
      `Streaming against memory: fmnist-tiny (batch ${batchSize}) on ${split.count} Fashion-MNIST images in` +
        ` ${split.shards.length} PNG shards of ${SHARD_SIZE}, ${steps} steps each, one replica, one augmentation` +
        ` thread; backend ${backend.name} (${backend.kernels}); img/s leave out the first ${WARMUP_STEPS} steps.`,
    );
    const memory = await inMemory(store, manifest, config, steps);
    const streaming = await streamed(store, manifest, config, steps, path.join(root, 'shard-cache'));
    console.log(
      '| data | img/s | ms/step | mean wait for a batch, ms | state checksum | checkpoint sha256 |',
    );
    console.log('|---|---|---|---|---|---|');
    for (const [name, r] of [
      ['in memory', memory],
      ['streamed', streaming],
    ] as const) {
      console.log(
        `| ${name} | ${r.imagesPerSecond.toFixed(1)} | ${(1000 / r.stepsPerSecond).toFixed(0)} |` +
          ` ${r.meanDataWaitMs.toFixed(1)} | ${r.stateChecksum} | ${r.checkpointSha256.slice(0, 16)}… |`,
      );
    }
    const ratio = streaming.imagesPerSecond / memory.imagesPerSecond;
    const sameState =
      memory.stateChecksum === streaming.stateChecksum &&
      memory.checkpointSha256 === streaming.checkpointSha256;
    console.log(`streaming / memory: ${ratio.toFixed(3)} (goal: within 5 %)`);
    console.log(
      sameState
        ? `final states identical: state checksum and checkpoint bytes match after ${steps} steps`
        : 'final states DIFFER: the two paths did not train on the same batches',
    );
    if (!sameState) process.exitCode = 1;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}
