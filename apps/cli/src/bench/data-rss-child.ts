import {
  FsBlobStore,
  readManifest,
  ShardCache,
  splitOf,
  StreamingSampleOrder,
  StreamingSplitReader,
} from '@dinoq/data';
import { selectBackend } from '@dinoq/dino';
import { argValue, peakRssMiB } from './bench-data';
import { tinyStreamingConfig, trainStreamed } from './data-train';

/**
 * One streamed training run of `npm run bench:data -- --rss`, alone in its process so that the
 * peak resident memory it reports is its own:
 *
 *   node data-rss-child.js --root DIR --dataset NAME --steps N --cache-dir DIR --cache-mib M
 *                          [--open-shard-mib B]
 *
 * Reads the dataset's `train` split from the FsBlobStore at DIR through a ShardCache in
 * `--cache-dir`, as the worker streams a split too large for its memory budget (one replica, one
 * augmentation thread), trains the tiny config for N steps and prints one line,
 * `RSS_RESULT_PREFIX` + JSON (`RssChildResult`), last on stdout. `--open-shard-mib` bounds the
 * parsed shards the reader keeps (default: the reader's own, which the worker uses too).
 */

export const RSS_RESULT_PREFIX = 'rss-result ';

export interface RssChildResult {
  images: number;
  shards: number;
  steps: number;
  peakRssMiB: number;
  stepsPerSecond: number;
  imagesPerSecond: number;
  backend: string;
  /** Shard downloads into the cache, evictions from it, and its size at the end. */
  shardsFetched: number;
  evictions: number;
  cachedMiB: number;
  /** Parsed shards the reader held at the end, and its bound on them. */
  openShards: number;
  openShardMiB: number;
  maxOpenShardMiB: number;
  /** Peaks of process.memoryUsage()'s parts, sampled every 100 ms: where the resident memory is. */
  peakHeapMiB: number;
  peakExternalMiB: number;
  peakArrayBuffersMiB: number;
}

/** Peaks of the V8 heap, external memory and ArrayBuffers, sampled until `stop()`. */
function sampleMemory(): { stop(): { heap: number; external: number; arrayBuffers: number } } {
  const peak = { heap: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    peak.heap = Math.max(peak.heap, m.heapUsed);
    peak.external = Math.max(peak.external, m.external);
    peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
  };
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

function required(name: string): string {
  const value = argValue(name);
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

async function main(): Promise<void> {
  const root = required('root');
  const dataset = required('dataset');
  const steps = Number(required('steps'));
  const cacheDir = required('cache-dir');
  const cacheMiB = Number(required('cache-mib'));
  const openShardMiB = argValue('open-shard-mib');
  const backend = await selectBackend();
  const store = new FsBlobStore(root);
  const manifest = await readManifest(store, dataset);
  const split = splitOf(manifest, 'train');
  const config = tinyStreamingConfig(split.count, steps);
  const cache = await ShardCache.open({ store, dataset, dir: cacheDir, maxBytes: cacheMiB * 2 ** 20 });
  const order = StreamingSampleOrder.forSplit(split, config.train.seed);
  const reader = new StreamingSplitReader({
    manifest,
    split: 'train',
    cache,
    order,
    maxOpenShardBytes: openShardMiB === undefined ? undefined : Number(openShardMiB) * 2 ** 20,
  });
  const sampler = sampleMemory();
  let run;
  try {
    run = await trainStreamed(reader, config, steps, async (_, timed) => timed);
  } finally {
    await cache.idle();
  }
  const parts = sampler.stop();
  const stats = reader.stats();
  const mib = (bytes: number) => bytes / 2 ** 20;
  const result: RssChildResult = {
    images: split.count,
    shards: split.shards.length,
    steps: run.steps,
    peakRssMiB: peakRssMiB(),
    stepsPerSecond: run.stepsPerSecond,
    imagesPerSecond: run.imagesPerSecond,
    backend: `${backend.name} (${backend.kernels})`,
    shardsFetched: stats.cache.misses,
    evictions: stats.cache.evictions,
    cachedMiB: mib(stats.cache.bytesCached),
    openShards: stats.openShards,
    openShardMiB: mib(stats.openShardBytes),
    maxOpenShardMiB: mib(stats.maxOpenShardBytes),
    peakHeapMiB: mib(parts.heap),
    peakExternalMiB: mib(parts.external),
    peakArrayBuffersMiB: mib(parts.arrayBuffers),
  };
  process.stdout.write(`${RSS_RESULT_PREFIX}${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
