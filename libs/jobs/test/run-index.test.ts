import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import {
  RunIndex,
  redisConnectionFromEnv,
  newRunRecord,
  runSummary,
  type RunPageQuery,
  type RunRecord,
  type RunSummary,
} from '../src';

const prefix = `dinoq-test-index-${randomBytes(4).toString('hex')}`;
const connection = redisConnectionFromEnv() as RedisOptions;
let redis: Redis;
let index: RunIndex;

const BASE_TIME = Date.parse('2025-01-01T00:00:00.000Z');
const at = (seconds: number) => new Date(BASE_TIME + seconds * 1000).toISOString();

function runRecord(runId: string, createdSecond: number, change: Partial<RunRecord> = {}): RunRecord {
  const created = newRunRecord({
    runId,
    datasetName: 'fmnist',
    datasetSize: 640,
    // The index never reads the config.
    config: {} as RunRecord['config'],
    device: 'cpu',
    totalSteps: 100,
    itersPerEpoch: 10,
    stepsPerShard: 50,
    numShards: 2,
    retryBudget: 3,
    createdAt: at(createdSecond),
  });
  return { ...created, ...change };
}

async function keysUnder(pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    found.push(...keys);
  } while (cursor !== '0');
  return found;
}

async function wipe(): Promise<void> {
  const keys = await keysUnder(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
}

/** Every page from the first, with `between` run after each page is read. */
async function readAll(
  query: Omit<RunPageQuery, 'cursor'>,
  between: (page: number) => Promise<void> = async () => undefined,
): Promise<RunSummary[]> {
  const items: RunSummary[] = [];
  let cursor: string | undefined;
  for (let page = 0; ; page += 1) {
    const answer = await index.page({ ...query, cursor });
    items.push(...answer.items);
    if (answer.nextCursor === null) return items;
    cursor = answer.nextCursor;
    await between(page);
  }
}

const ids = (items: RunSummary[]) => items.map((item) => item.runId);

beforeAll(() => {
  redis = new Redis(connection);
  index = new RunIndex(redis, prefix);
});
beforeEach(wipe);
afterAll(async () => {
  await wipe();
  await redis.quit();
});

describe('RunIndex', () => {
  it('moves a run between status sets and replaces its summary', async () => {
    const queued = runRecord('r-move', 0);
    await index.recordWritten(queued);
    const running = {
      ...queued,
      status: 'running' as const,
      backend: 'wasm',
      committedSteps: [50],
      lastCommittedStep: 50,
      latestMetrics: { step: 57, loss: 7.5, imagesPerSecond: 12 },
      updatedAt: at(5),
    };
    await index.recordWritten(running);

    expect(await index.count('queued')).toBe(0);
    expect(await index.count('running')).toBe(1);
    expect(await index.activeRunIds()).toEqual(['r-move']);
    const page = await index.page({ limit: 10, status: 'running' });
    expect(page.items).toEqual([runSummary(running)]);
    expect(page.items[0]).toMatchObject({
      status: 'running',
      progress: { shard: 1, numShards: 2, step: 57, totalSteps: 100, epoch: 5 },
      lastCommittedStep: 50,
      loss: 7.5,
      imagesPerSecond: 12,
    });

    await index.recordWritten({ ...running, status: 'completed', updatedAt: at(9) });
    expect(await index.count('running')).toBe(0);
    expect(await index.activeRunIds()).toEqual([]);
    expect(ids((await index.page({ limit: 10, status: 'completed' })).items)).toEqual(['r-move']);
    expect(await index.count()).toBe(1);

    expect(await index.remove('r-move')).toBe(true);
    expect(await index.count()).toBe(0);
    expect(await index.count('completed')).toBe(0);
    expect(await index.remove('r-move')).toBe(false);
  });

  it('never lets an older record overwrite a newer one, whatever the arrival order', async () => {
    const versions = Array.from({ length: 20 }, (_, i) =>
      runRecord('r-race', 0, {
        status: i === 19 ? 'completed' : 'running',
        latestMetrics: { step: i },
        updatedAt: at(i + 1),
      }),
    );
    await index.recordWritten(versions[19]);
    await index.recordWritten(versions[3]);
    let [entry] = (await index.page({ limit: 1 })).items;
    expect(entry.status).toBe('completed');
    expect(await index.count('running')).toBe(0);

    await index.remove('r-race');
    // Many writers at once, from separate connections, newest somewhere in the middle.
    const connections = versions.map(() => new Redis(connection));
    const shuffled = [...versions].sort(() => Math.random() - 0.5);
    await Promise.all(
      shuffled.map((version, i) => new RunIndex(connections[i], prefix).recordWritten(version)),
    );
    await Promise.all(connections.map((connection) => connection.quit()));
    [entry] = (await index.page({ limit: 1 })).items;
    expect(entry).toMatchObject({ status: 'completed', updatedAt: at(20), progress: { step: 19 } });
    expect(await index.count()).toBe(1);
    expect(await index.count('completed')).toBe(1);
  });

  it('pages completely and in order over 1,234 runs while runs are added between pages', async () => {
    // Ties in createdAt (three runs per second) are broken by run id.
    const records = Array.from({ length: 1234 }, (_, i) =>
      runRecord(`run-${String(i).padStart(4, '0')}`, Math.floor(i / 3) + 10, {
        status: i % 4 === 0 ? 'running' : 'completed',
      }),
    );
    await index.rebuild([...records].reverse());
    const expected = ids(records.map(runSummary));

    let added = 0;
    const addRuns = async (page: number) => {
      // One run older than everything (behind the cursor) and one newer (ahead of it) per page.
      await index.recordWritten(runRecord(`old-${page}`, 0));
      await index.recordWritten(runRecord(`new-${page}`, 10_000 + page));
      added += 1;
    };
    const all = ids(await readAll({ limit: 100 }, addRuns));
    expect(added).toBeGreaterThanOrEqual(12);
    expect(all.filter((id) => id.startsWith('run-'))).toEqual(expected);
    expect(all.filter((id) => id.startsWith('new-'))).toEqual(
      Array.from({ length: added }, (_, page) => `new-${page}`),
    );
    expect(all.some((id) => id.startsWith('old-'))).toBe(false);
    expect(new Set(all).size).toBe(all.length);

    const running = ids(await readAll({ limit: 37, status: 'running' }));
    expect(running).toEqual(expected.filter((_, i) => i % 4 === 0));
    const newestFirst = ids(await readAll({ limit: 250, order: 'desc' }));
    expect(newestFirst).toEqual(ids(await readAll({ limit: 500 })).reverse());
    expect(await index.page({ limit: 5, status: 'running' })).toMatchObject({ total: 309, built: true });

    await expect(index.page({ limit: 5, cursor: 'not a cursor' })).rejects.toThrow(/cursor/);
    await expect(index.page({ limit: 0 })).rejects.toThrow(/limit/);
  });

  it('rebuilds under temporary keys, swaps at once, keeps writes made meanwhile and sets the marker', async () => {
    await index.recordWritten(runRecord('ghost', 1));
    await index.recordWritten(runRecord('kept', 2));
    expect(await index.isBuilt()).toBe(false);

    const stored = [runRecord('kept', 2), runRecord('moved', 3), runRecord('deleted', 4)];
    let releaseSource!: () => void;
    const sourcePaused = new Promise<void>((resolve) => (releaseSource = resolve));
    let reachedPause!: () => void;
    const atPause = new Promise<void>((resolve) => (reachedPause = resolve));
    async function* source() {
      yield stored[0];
      reachedPause();
      await sourcePaused;
      yield* stored.slice(1);
    }
    const rebuilding = index.rebuild(source());
    await atPause;
    // Mid-rebuild: readers see the old index, and writers report newer states of runs.
    expect(ids((await index.page({ limit: 10 })).items)).toEqual(['ghost', 'kept']);
    await index.recordWritten(runRecord('moved', 3, { status: 'running', updatedAt: at(30) }));
    await index.remove('deleted');
    releaseSource();
    expect(await rebuilding).toBe(3);

    expect(await index.isBuilt()).toBe(true);
    const page = await index.page({ limit: 10 });
    expect(page).toMatchObject({ built: true, total: 2, nextCursor: null });
    expect(page.items.map((item) => [item.runId, item.status])).toEqual([
      ['kept', 'queued'],
      ['moved', 'running'],
    ]);
    expect(await keysUnder(`${prefix}:run-index:rebuild:*`)).toEqual([]);
    expect(await redis.zcard(`${prefix}:run-index:rebuilds`)).toBe(0);
    expect(await redis.pttl(`${prefix}:run-index:summaries`)).toBe(-1);
  });

  it('leaves the old index untouched when a rebuild fails', async () => {
    await index.rebuild([runRecord('a', 1)]);
    async function* failing() {
      yield runRecord('b', 2);
      throw new Error('storage went away');
    }
    await expect(index.rebuild(failing())).rejects.toThrow('storage went away');
    expect(ids((await index.page({ limit: 10 })).items)).toEqual(['a']);
    expect(await keysUnder(`${prefix}:run-index:rebuild:*`)).toEqual([]);
  });

  it('is not built after a wipe, and concurrent callers share one rebuild', async () => {
    await index.rebuild([runRecord('a', 1), runRecord('b', 2)]);
    expect(await index.isBuilt()).toBe(true);
    await wipe();
    expect(await index.isBuilt()).toBe(false);
    expect(await index.page({ limit: 10 })).toEqual({ items: [], nextCursor: null, total: 0, built: false });

    let loads = 0;
    const load = async () => {
      loads += 1;
      return [runRecord('a', 1), runRecord('b', 2)];
    };
    await Promise.all([index.ensureBuilt(load), index.ensureBuilt(load), index.ensureBuilt(load)]);
    expect(loads).toBe(1);
    expect(ids((await index.page({ limit: 10 })).items)).toEqual(['a', 'b']);
    await index.ensureBuilt(load);
    expect(loads).toBe(1);

    await index.clear();
    expect(await index.isBuilt()).toBe(false);
    expect(await index.count()).toBe(0);
    expect(await keysUnder(`${prefix}:run-index:*`)).toEqual([]);
  });
});
