/**
 * Resident memory of a streamed training run does not grow with the dataset: the same tiny DINO
 * run over 2,000 and over 200,000 generated JPEGs in tar shards, each in its own process through
 * the streaming reader and a bounded shard cache, peaks within 10 % of each other. The runs are
 * those of `npm run bench:data -- --rss`, which prints the figures; this test holds them to the goal.
 * Four processes of about 15 s each.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { RssChildResult } from '../apps/cli/src/bench/data-rss-child';
import { buildApp, ROOT } from './e2e/helpers/build';

const BENCH = path.join(ROOT, 'apps/cli/dist/bench/data.js');
const STEPS = 200;

jest.setTimeout(600_000);

test('peak RSS of 200 streamed steps over 200,000 images stays within 10 % of the run over 2,000', () => {
  buildApp('cli', BENCH);
  const dir = mkdtempSync(path.join(tmpdir(), 'dinoq-streaming-memory-'));
  try {
    const report = path.join(dir, 'rss.json');
    execFileSync(
      process.execPath,
      [
        BENCH,
        '--rss',
        '2000,200000',
        '--rss-steps',
        String(STEPS),
        '--rss-repeats',
        '2',
        '--rss-report',
        report,
      ],
      { cwd: ROOT, stdio: 'pipe' },
    );
    const [small, large] = JSON.parse(readFileSync(report, 'utf8')) as RssChildResult[];
    expect([small.images, large.images]).toEqual([2000, 200_000]);
    expect([small.steps, large.steps]).toEqual([STEPS, STEPS]);
    // The large run really streamed: shards came through the cache, the split's 100 shards were
    // all indexed by the sample order, and the reader held only shard indexes.
    expect(large.shards).toBe(100);
    expect(large.shardsFetched).toBeGreaterThan(1);
    expect(large.openShardMiB).toBeLessThan(large.maxOpenShardMiB);
    // Each size ran twice and kept its lower peak (allocator noise only adds to a peak).
    expect(large.peakRssMiB).toBeLessThanOrEqual(1.1 * small.peakRssMiB);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
