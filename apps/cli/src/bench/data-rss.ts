import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  encodeJpeg,
  FsBlobStore,
  MANIFEST_VERSION,
  ShardWriter,
  tryReadManifest,
  writeManifest,
  type DatasetManifest,
} from '@dinoq/data';
import { RSS_RESULT_PREFIX, type RssChildResult } from './data-rss-child';
import { WARMUP_STEPS } from './data-train';

/**
 * `npm run bench:data -- --rss 2000,20000,200000 [--rss-steps 300] [--rss-open-shard-mib B]
 * [--rss-repeats R]`: peak resident memory of a streamed training run against the dataset's size.
 * Each size trains the same tiny config for the same steps in its own process (data-rss-child.ts),
 * so each peak is its own; a streamed run holds a bounded set of shards, so the peaks should stay
 * flat as the dataset grows.
 * The parsed shards the reader keeps are bounded by `B` MiB when given, else by the reader's
 * default (at least 256 MiB), as in the worker: below that bound they grow with the shards read.
 */

const SIDE = 32;
const CLASSES = 10;
const SHARD_SIZE = 2000;
const QUALITY = 90;
/** Distinct images encoded; the dataset repeats their bytes cyclically under distinct keys. */
const DISTINCT = 500;
const DATASET = 'bench-rss';
const CACHE_MIB = 64;

/** A small deterministic generator, so the cached datasets are the same on every machine. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A SIDE × SIDE RGB tile: stripes whose angle and frequency follow the class, random colours, grain. */
function syntheticTile(index: number): Uint8Array {
  const rnd = lcg(index + 1);
  const label = index % CLASSES;
  const angle = (label * Math.PI) / CLASSES;
  const frequency = 0.2 + 0.05 * label;
  const [a, b] = [0, 1].map(() => [rnd() * 255, rnd() * 255, rnd() * 255]);
  const px = new Uint8ClampedArray(SIDE * SIDE * 3);
  for (let y = 0; y < SIDE; y++)
    for (let x = 0; x < SIDE; x++) {
      const t = 0.5 + 0.5 * Math.sin(frequency * (x * Math.cos(angle) + y * Math.sin(angle)) * Math.PI);
      for (let c = 0; c < 3; c++) px[(y * SIDE + x) * 3 + c] = a[c] * t + b[c] * (1 - t) + (rnd() - 0.5) * 40;
    }
  return new Uint8Array(px.buffer);
}

function datasetDir(images: number): string {
  return path.join(os.tmpdir(), `dinoq-bench-rss-${images}`);
}

function isComplete(manifest: DatasetManifest | undefined, images: number): manifest is DatasetManifest {
  const train = manifest?.splits.train;
  return (
    manifest?.imageSize?.width === SIDE &&
    manifest.imageSize.height === SIDE &&
    manifest.imageSize.channels === 3 &&
    train?.count === images &&
    train.shards.every((s, i) => s.count === Math.min(SHARD_SIZE, images - SHARD_SIZE * i))
  );
}

/**
 * The dataset of `images` images in its temporary folder, written there on first use: tar shards of
 * SHARD_SIZE JPEGs, then the manifest (whose presence marks a finished dataset).
 */
async function ensureDataset(
  images: number,
  encodedTiles: () => Promise<Uint8Array[]>,
): Promise<{ root: string; mib: number }> {
  const root = datasetDir(images);
  const store = new FsBlobStore(root);
  let manifest = await tryReadManifest(store, DATASET);
  if (!isComplete(manifest, images)) {
    const started = performance.now();
    fs.rmSync(root, { recursive: true, force: true });
    const tiles = await encodedTiles();
    const writer = new ShardWriter(store, { dataset: DATASET, split: 'train', shardSize: SHARD_SIZE });
    for (let i = 0; i < images; i++) {
      const tile = i % tiles.length;
      await writer.add({
        key: String(i).padStart(9, '0'),
        image: tiles[tile],
        imageExt: 'jpg',
        label: tile % CLASSES,
      });
    }
    manifest = {
      name: DATASET,
      version: MANIFEST_VERSION,
      imageSize: { width: SIDE, height: SIDE, channels: 3 },
      classes: Array.from({ length: CLASSES }, (_, c) => `class-${c}`),
      splits: { train: await writer.finish() },
      createdAt: new Date().toISOString(),
    };
    await writeManifest(store, manifest);
    console.log(
      `  wrote ${images} images to ${root} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  } else {
    console.log(`  reusing ${root}`);
  }
  const bytes = manifest.splits.train.shards.reduce((sum, s) => sum + s.bytes, 0);
  return { root, mib: bytes / 2 ** 20 };
}

/*
 * The children's peaks should measure what a run keeps, not how much garbage the allocators let
 * pile up before collecting it, which varies from run to run, with the load on the machine and
 * between Node versions (unpinned, Node 24 peaked at 442 MiB over 2,000 images and 337 MiB over
 * 200,000: V8 heap peaks of 164 and 107 MiB). So every child runs with V8's young generation fixed
 * at 8 MiB per semi-space, V8's predictable GC schedule (heap growth that does not follow measured
 * GC and mutator speeds, which change with the machine's load: with the two cores busy elsewhere,
 * the 2,000-image child peaked 12 % lower than alone) and glibc limited to two malloc arenas (a
 * setting production Node services often use for the same reason). What noise is left only adds
 * to a peak, so `repeats` runs each size that many times, interleaved, and keeps the lowest peak.
 */
const CHILD_NODE_FLAGS = ['--max-semi-space-size=8', '--predictable-gc-schedule'];
const CHILD_ENV = { MALLOC_ARENA_MAX: '2' };

/** Runs data-rss-child.js and returns what it reports. */
function runChild(args: string[]): Promise<RssChildResult> {
  const script = path.join(__dirname, 'data-rss-child.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CHILD_NODE_FLAGS, script, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...CHILD_ENV },
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const line = stdout.split('\n').find((l) => l.startsWith(RSS_RESULT_PREFIX));
      if (code !== 0 || !line) {
        reject(
          new Error(
            `${script} ${args.join(' ')} exited with ${signal ?? code}: ${stdout.trim().slice(-2000)}`,
          ),
        );
        return;
      }
      resolve(JSON.parse(line.slice(RSS_RESULT_PREFIX.length)) as RssChildResult);
    });
  });
}

/** One child over the dataset at `root`, with a shard cache of its own emptied afterwards. */
async function runOnce(
  root: string,
  steps: number,
  openShardMiB: number | undefined,
): Promise<RssChildResult> {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dinoq-bench-rss-cache-'));
  try {
    return await runChild([
      '--root',
      root,
      '--dataset',
      DATASET,
      '--steps',
      String(steps),
      '--cache-dir',
      cacheDir,
      '--cache-mib',
      String(CACHE_MIB),
      ...(openShardMiB === undefined ? [] : ['--open-shard-mib', String(openShardMiB)]),
    ]);
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
}

export async function rssBench(
  sizes: number[],
  steps: number,
  openShardMiB: number | undefined,
  repeats = 1,
): Promise<RssChildResult[]> {
  for (const n of sizes)
    if (!Number.isInteger(n) || n < SHARD_SIZE)
      throw new Error(`--rss sizes must be integers of at least ${SHARD_SIZE} images, got ${n}`);
  if (steps <= WARMUP_STEPS) throw new Error(`--rss-steps must exceed the ${WARMUP_STEPS} warm-up steps`);
  const ordered = [...new Set(sizes)].sort((a, b) => a - b);
  console.log(
    `Peak RSS of a streamed training run against dataset size: ${SIDE} × ${SIDE} RGB JPEGs (quality ${QUALITY}),` +
      ` ${CLASSES} classes, shards of ${SHARD_SIZE}. ${DISTINCT} distinct images are encoded and their bytes` +
      ' repeated cyclically under distinct keys, so decoding costs what distinct images would.',
  );
  let tiles: Uint8Array[] | undefined;
  const encodedTiles = async () => {
    if (!tiles) {
      tiles = [];
      for (let i = 0; i < DISTINCT; i++)
        tiles.push(await encodeJpeg(syntheticTile(i), SIDE, SIDE, 3, QUALITY));
    }
    return tiles;
  };
  const datasets = [];
  for (const n of ordered) datasets.push({ images: n, ...(await ensureDataset(n, encodedTiles)) });

  console.log(
    `\nEach size in its own process: tiny DINO (ViT depth 1, dim 16, 2 heads; head 32-16 → 64; 2 × 32 px + 2 × 16 px crops;` +
      ` batch 32), ${steps} steps, one replica, one augmentation thread, streamed through a ${CACHE_MIB} MiB shard cache` +
      ` (emptied before each run), parsed shards held up to` +
      ` ${openShardMiB === undefined ? "the reader's default" : `${openShardMiB} MiB`};` +
      ` steps/s leave out the first ${WARMUP_STEPS} steps.` +
      (repeats > 1 ? ` Each size runs ${repeats} times, interleaved; the table keeps its lowest peak.` : ''),
  );
  const lowest = new Map<number, RssChildResult>();
  for (let repeat = 0; repeat < repeats; repeat++)
    for (const d of datasets) {
      const r = await runOnce(d.root, steps, openShardMiB);
      console.log(
        `  ${r.images} images: peak RSS ${r.peakRssMiB.toFixed(0)} MiB (peaks: V8 heap ${r.peakHeapMiB.toFixed(0)},` +
          ` external ${r.peakExternalMiB.toFixed(0)}, of which ArrayBuffers ${r.peakArrayBuffersMiB.toFixed(0)} MiB),` +
          ` ${r.stepsPerSecond.toFixed(2)} steps/s`,
      );
      const best = lowest.get(d.images);
      if (!best || r.peakRssMiB < best.peakRssMiB) lowest.set(d.images, r);
    }
  const results = [...lowest.values()];

  const base = results[0].peakRssMiB;
  console.log(`\nbackend ${results[0].backend}`);
  console.log(
    '| images | shards | dataset MiB | peak RSS MiB | × smallest | steps/s | img/s | shards fetched | evictions | cache MiB at end | parsed shards held at end (MiB, bound) |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [i, r] of results.entries()) {
    console.log(
      `| ${r.images} | ${r.shards} | ${datasets[i].mib.toFixed(0)} | ${r.peakRssMiB.toFixed(0)} | ${(r.peakRssMiB / base).toFixed(3)} |` +
        ` ${r.stepsPerSecond.toFixed(2)} | ${r.imagesPerSecond.toFixed(0)} | ${r.shardsFetched} | ${r.evictions} |` +
        ` ${r.cachedMiB.toFixed(0)} | ${r.openShards} (${r.openShardMiB.toFixed(0)}, ${r.maxOpenShardMiB.toFixed(0)}) |`,
    );
  }
  const worst = Math.max(...results.map((r) => r.peakRssMiB / base));
  console.log(
    `largest peak ${((worst - 1) * 100).toFixed(1)} % above the smallest dataset's (goal: within 10 %)`,
  );
  return results;
}
