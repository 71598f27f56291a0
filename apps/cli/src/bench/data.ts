import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveRunConfig, type AugmentConfig, type PresetName } from '@dinoq/config';
import { augmentBatch, decodeImage, encodeJpeg, uniformImages, type ImageSource } from '@dinoq/data';
import { argValue } from './bench-data';
import { rssBench } from './data-rss';
import { streamingVsMemoryBench } from './data-throughput';

/**
 * npm run bench:data [-- --images 48 --batch 16 --preset vit_small_p16,fmnist-tiny] [--step-ms N]
 *
 * Speed of the data pipeline on one thread: JPEG decode, DINO multi-crop from decoded pixels,
 * and both, in images per CPU-second (`process.cpuUsage()`, so threads that sharp starts are
 * counted too). The images are generated once and cached: 500 × 375 JPEGs of about 130 KB
 * (gradients, shapes and grain at quality 90), the size of the paper's ImageNet-like inputs.
 * `--step-ms` (a training step time for the preset's batch, e.g. from bench:train) adds the
 * share of that step the pipeline would take.
 *
 * npm run bench:data -- --rss 2000,20000,200000 [--rss-steps 300] [--rss-open-shard-mib B]
 *                       [--rss-repeats R] [--rss-report FILE]
 *   Peak RSS of a streamed training run of a tiny config against dataset size, one process per
 *   size (data-rss.ts), each size run R times (default 1) keeping its lowest peak; the datasets
 *   are generated once under the temporary folder. FILE gets each size's figures as JSON
 *   (RssChildResult[]).
 * npm run bench:data -- --streaming-vs-memory [--train-limit 6400] [--tp-steps 100]
 *   Training throughput of fmnist-tiny with the split in memory and streamed from its shards, and
 *   whether both end in the same state (data-throughput.ts).
 * The two flags combine; without either, the pipeline figures above are printed.
 */

const WIDTH = 500;
const HEIGHT = 375;
const QUALITY = 90;
// Grain amplitude tuned so that the JPEGs land near the ~130 KB of typical ImageNet photos.
const GRAIN = 45;

/** A small deterministic generator, so the cached images are the same on every machine. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function syntheticPhoto(seed: number): Uint8Array {
  const rnd = lcg(seed);
  const px = new Uint8Array(WIDTH * HEIGHT * 3);
  const base = [0, 1, 2].map(() => [rnd() * 255, (rnd() - 0.5) * 0.6, (rnd() - 0.5) * 0.6]);
  const shapes = Array.from({ length: 14 }, () => ({
    cx: rnd() * WIDTH,
    cy: rnd() * HEIGHT,
    r: 15 + rnd() * 90,
    round: rnd() < 0.5,
    colour: [rnd() * 255, rnd() * 255, rnd() * 255],
  }));
  for (let y = 0; y < HEIGHT; y++)
    for (let x = 0; x < WIDTH; x++) {
      const colour = base.map(([c0, dx, dy]) => c0 + dx * x + dy * y);
      for (const s of shapes) {
        const dx = Math.abs(x - s.cx);
        const dy = Math.abs(y - s.cy);
        const inside = s.round ? dx * dx + dy * dy < s.r * s.r : dx < s.r && dy < s.r * 0.7;
        if (inside)
          for (let c = 0; c < 3; c++) colour[c] = 0.3 * colour[c] + 0.7 * s.colour[c] + (dx - dy) * 0.2;
      }
      for (let c = 0; c < 3; c++) px[(y * WIDTH + x) * 3 + c] = colour[c] + (rnd() - 0.5) * 2 * GRAIN;
    }
  return px;
}

async function benchJpegs(count: number): Promise<Uint8Array[]> {
  const dir = path.join(os.tmpdir(), 'dinoq-bench-jpeg', `v1-${WIDTH}x${HEIGHT}-q${QUALITY}-g${GRAIN}`);
  fs.mkdirSync(dir, { recursive: true });
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `${i}.jpg`);
    if (!fs.existsSync(file))
      fs.writeFileSync(file, await encodeJpeg(syntheticPhoto(i + 1), WIDTH, HEIGHT, 3, QUALITY));
    out.push(fs.readFileSync(file));
  }
  return out;
}

/** CPU seconds (user + system, all threads) that `work` takes. */
async function cpuSeconds(work: () => Promise<void>): Promise<number> {
  const start = process.cpuUsage();
  await work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

async function decodeAll(jpegs: Uint8Array[]): Promise<ImageSource> {
  const frame = WIDTH * HEIGHT * 3;
  const images = new Uint8Array(jpegs.length * frame);
  for (const [i, bytes] of jpegs.entries()) images.set((await decodeImage(bytes, 3)).data, i * frame);
  return uniformImages({ images, count: jpegs.length, height: HEIGHT, width: WIDTH, channels: 3 });
}

async function augmentAll(source: ImageSource, cfg: AugmentConfig, batch: number): Promise<void> {
  for (let start = 0; start < source.count; start += batch) {
    const indices = Array.from({ length: Math.min(batch, source.count - start) }, (_, i) => start + i);
    await augmentBatch(source, indices, cfg, { seed: 1, epoch: 0 });
  }
}

function describeCrops(cfg: AugmentConfig): string {
  return `2 × ${cfg.globalCropSize} + ${cfg.localCropsNumber} × ${cfg.localCropSize}`;
}

function printMachine(): void {
  const cpus = os.cpus();
  console.log(
    `bench:data — ${cpus[0]?.model ?? 'unknown CPU'} × ${cpus.length} cores, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'},` +
      ` node ${process.version}, load average ${os
        .loadavg()
        .map((v) => v.toFixed(2))
        .join(' ')}`,
  );
}

function positiveInteger(name: string, fallback: string): number {
  const raw = argValue(name, fallback);
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return value;
}

async function pipelineBench(): Promise<void> {
  const count = Number(argValue('images', '48'));
  const batch = Number(argValue('batch', '16'));
  const presets = (argValue('preset', 'vit_small_p16,fmnist-tiny') ?? '').split(',') as PresetName[];
  const stepMs = argValue('step-ms');
  const jpegs = await benchJpegs(count);
  const kb = jpegs.reduce((s, j) => s + j.length, 0) / jpegs.length / 1024;
  console.log(
    `${count} JPEGs ${WIDTH} × ${HEIGHT}, mean ${kb.toFixed(0)} KB; batches of ${batch}; one image at a time\n`,
  );

  await decodeAll(jpegs.slice(0, 4)); // warm-up: loads libvips and JITs the JS paths
  let decoded: ImageSource | undefined;
  const decodeCpu = await cpuSeconds(async () => {
    decoded = await decodeAll(jpegs);
  });
  const rate = (cpu: number): string => (count / cpu).toFixed(1);
  console.log(
    '| crops (preset) | decode img/CPU-s | multi-crop img/CPU-s | decode + multi-crop img/CPU-s |' +
      (stepMs ? ' share of a step |' : ''),
  );
  console.log('|---|---|---|---|' + (stepMs ? '---|' : ''));
  for (const preset of presets) {
    const cfg = resolveRunConfig(preset).augment;
    await augmentAll({ ...decoded!, count: Math.min(4, count) }, cfg, batch);
    const augmentCpu = await cpuSeconds(() => augmentAll(decoded!, cfg, batch));
    const bothCpu = await cpuSeconds(async () => augmentAll(await decodeAll(jpegs), cfg, batch));
    const batchSize = resolveRunConfig(preset).train.batchSize;
    const share = stepMs
      ? ` ${((((bothCpu / count) * batchSize * 1000) / Number(stepMs)) * 100).toFixed(1)} % |`
      : '';
    console.log(
      `| ${describeCrops(cfg)} (${preset}) | ${rate(decodeCpu)} | ${rate(augmentCpu)} | ${rate(bothCpu)} |${share}`,
    );
  }
}

async function main(): Promise<void> {
  printMachine();
  const rssSizes = argValue('rss');
  const streamingVsMemory = process.argv.includes('--streaming-vs-memory');
  if (rssSizes === undefined && !streamingVsMemory) return pipelineBench();
  if (rssSizes !== undefined) {
    console.log();
    const openShardMiB = argValue('rss-open-shard-mib');
    const results = await rssBench(
      rssSizes.split(',').map(Number),
      positiveInteger('rss-steps', '300'),
      openShardMiB === undefined ? undefined : positiveInteger('rss-open-shard-mib', openShardMiB),
      positiveInteger('rss-repeats', '1'),
    );
    const report = argValue('rss-report');
    if (report !== undefined) fs.writeFileSync(report, JSON.stringify(results, null, 2));
  }
  if (streamingVsMemory) {
    console.log();
    await streamingVsMemoryBench(positiveInteger('train-limit', '6400'), positiveInteger('tp-steps', '100'));
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
