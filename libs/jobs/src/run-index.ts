import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { QUEUE_PREFIX } from './queues';
import { runStatuses, type RunRecord, type RunRecordObserver, type RunStatus } from './run-record';
import { runSummary, type RunSummary } from './run-summary';

/*
 * Key layout under `<prefix>:run-index`:
 *   :summaries      hash   runId → compact JSON RunSummary
 *   :versions       hash   runId → "<updatedAt ms> <status> <member>" (what an upsert must undo)
 *   :order          zset   every member, all scores 0, so members sort by bytes: "<createdAt ISO> <runId>"
 *   :status:<s>     zset   the members of runs in status s, same ordering
 *   :built          string when the index was last rebuilt; absent after a wipe (then rebuild from S3)
 *   :rebuilds       zset   token → deadline ms of each rebuild in progress
 *   :rebuild:<token>:*     the same keys under construction, plus :removed (runs deleted meanwhile)
 * Every change is one Lua script, so readers see an entry either before or after a write, and a
 * rebuild swaps all keys at once. Scripts derive key names from the prefix: fine on one Redis
 * server, as this project runs, not on Redis Cluster.
 */

/** Long enough for a rebuild of many thousands of runs; a dead rebuilder's keys expire after it. */
const REBUILD_TTL_MS = 10 * 60_000;
const REBUILD_BATCH = 500;

/** The keys that make up one index (live or under construction), after its base name. */
const INDEX_KEYS = ['summaries', 'versions', 'order', ...runStatuses.map((status) => `status:${status}`)];

const LUA_LIBRARY = `
local INDEX_KEYS = {${INDEX_KEYS.map((name) => `'${name}'`).join(', ')}}

local function indexKeys(base)
  local keys = {}
  for i, name in ipairs(INDEX_KEYS) do keys[i] = base .. ':' .. name end
  return keys
end

local function parseVersion(entry)
  return string.match(entry, '^(%d+) (%S+) (.*)$')
end

-- 1 when written; 0 when the index holds a newer version of the run (older writes never win).
local function upsert(base, runId, version, status, member, summary)
  local old = redis.call('HGET', base .. ':versions', runId)
  if old then
    local oldVersion, oldStatus, oldMember = parseVersion(old)
    if tonumber(version) < tonumber(oldVersion) then return 0 end
    redis.call('ZREM', base .. ':order', oldMember)
    redis.call('ZREM', base .. ':status:' .. oldStatus, oldMember)
  end
  redis.call('HSET', base .. ':versions', runId, version .. ' ' .. status .. ' ' .. member)
  redis.call('HSET', base .. ':summaries', runId, summary)
  redis.call('ZADD', base .. ':order', 0, member)
  redis.call('ZADD', base .. ':status:' .. status, 0, member)
  return 1
end

local function delete(base, runId)
  local old = redis.call('HGET', base .. ':versions', runId)
  if not old then return 0 end
  local _, oldStatus, oldMember = parseVersion(old)
  redis.call('HDEL', base .. ':versions', runId)
  redis.call('HDEL', base .. ':summaries', runId)
  redis.call('ZREM', base .. ':order', oldMember)
  redis.call('ZREM', base .. ':status:' .. oldStatus, oldMember)
  return 1
end

local function nowMs()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function rebuildBase(root, token)
  return root .. ':rebuild:' .. token
end

-- Rebuilds in progress as {token, deadline, ...}; those past their deadline died and are dropped.
local function activeRebuilds(root)
  redis.call('ZREMRANGEBYSCORE', root .. ':rebuilds', '-inf', nowMs())
  return redis.call('ZRANGE', root .. ':rebuilds', 0, -1, 'WITHSCORES')
end

local function expireAt(base, deadline)
  for _, key in ipairs(indexKeys(base)) do redis.call('PEXPIREAT', key, deadline) end
  redis.call('PEXPIREAT', base .. ':removed', deadline)
end

local function liveDeadline(root, token)
  local deadline = redis.call('ZSCORE', root .. ':rebuilds', token)
  if not deadline or tonumber(deadline) <= nowMs() then return nil end
  return deadline
end
`;

// Writes reach the live index and every rebuild in progress, so a rebuild that read an older
// record from storage cannot swap in a state older than what writers have reported since.
const UPSERT = `
local root, runId = ARGV[1], ARGV[2]
local written = upsert(root, runId, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
local rebuilds = activeRebuilds(root)
for i = 1, #rebuilds, 2 do
  local base = rebuildBase(root, rebuilds[i])
  redis.call('SREM', base .. ':removed', runId)
  upsert(base, runId, ARGV[3], ARGV[4], ARGV[5], ARGV[6])
  expireAt(base, rebuilds[i + 1])
end
return written`;

const REMOVE = `
local root, runId = ARGV[1], ARGV[2]
local removed = delete(root, runId)
local rebuilds = activeRebuilds(root)
for i = 1, #rebuilds, 2 do
  local base = rebuildBase(root, rebuilds[i])
  delete(base, runId)
  redis.call('SADD', base .. ':removed', runId)
  expireAt(base, rebuilds[i + 1])
end
return removed`;

const REBUILD_BEGIN = `
redis.call('ZADD', ARGV[1] .. ':rebuilds', nowMs() + tonumber(ARGV[3]), ARGV[2])
return 1`;

// ARGV: root, token, ttl ms, then runId, version, status, member, summary per record.
const REBUILD_INSERT = `
local root, token = ARGV[1], ARGV[2]
if not liveDeadline(root, token) then return redis.error_reply('run index rebuild ' .. token .. ' expired') end
local deadline = nowMs() + tonumber(ARGV[3])
redis.call('ZADD', root .. ':rebuilds', deadline, token)
local base = rebuildBase(root, token)
for i = 4, #ARGV, 5 do
  if redis.call('SISMEMBER', base .. ':removed', ARGV[i]) == 0 then
    upsert(base, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
  end
end
expireAt(base, deadline)
return 1`;

// ARGV: root, token, built-at text. RENAME keeps the temporary keys' expiry, hence PERSIST.
const REBUILD_SWAP = `
local root, token = ARGV[1], ARGV[2]
if not liveDeadline(root, token) then return redis.error_reply('run index rebuild ' .. token .. ' expired') end
local base = rebuildBase(root, token)
local live = indexKeys(root)
for i, key in ipairs(indexKeys(base)) do
  if redis.call('EXISTS', key) == 1 then
    redis.call('RENAME', key, live[i])
    redis.call('PERSIST', live[i])
  else
    redis.call('DEL', live[i])
  end
end
redis.call('DEL', base .. ':removed')
redis.call('ZREM', root .. ':rebuilds', token)
redis.call('SET', root .. ':built', ARGV[3])
return 1`;

const REBUILD_ABORT = `
local base = rebuildBase(ARGV[1], ARGV[2])
redis.call('DEL', base .. ':removed', unpack(indexKeys(base)))
redis.call('ZREM', ARGV[1] .. ':rebuilds', ARGV[2])
return 1`;

// ARGV: root, zset name, cursor member ('' = from the start), limit, 'asc' | 'desc'.
// Reply: {built 0/1, total, next member or '', summary...}.
const PAGE = `
local root, zset, cursor, limit = ARGV[1], ARGV[1] .. ':' .. ARGV[2], ARGV[3], tonumber(ARGV[4])
local members
if ARGV[5] == 'desc' then
  members = redis.call('ZRANGE', zset, cursor == '' and '+' or '(' .. cursor, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1)
else
  members = redis.call('ZRANGE', zset, cursor == '' and '-' or '(' .. cursor, '+', 'BYLEX', 'LIMIT', 0, limit + 1)
end
local nextCursor = ''
if #members > limit then
  nextCursor = members[limit]
  members[limit + 1] = nil
end
local reply = {redis.call('EXISTS', root .. ':built'), redis.call('ZCARD', zset), nextCursor}
if #members > 0 then
  local ids = {}
  for i, member in ipairs(members) do ids[i] = string.match(member, '(%S+)$') end
  for _, summary in ipairs(redis.call('HMGET', root .. ':summaries', unpack(ids))) do
    reply[#reply + 1] = summary
  end
end
return reply`;

const SCRIPTS = {
  runIndexUpsert: UPSERT,
  runIndexRemove: REMOVE,
  runIndexRebuildBegin: REBUILD_BEGIN,
  runIndexRebuildInsert: REBUILD_INSERT,
  runIndexRebuildSwap: REBUILD_SWAP,
  runIndexRebuildAbort: REBUILD_ABORT,
  runIndexPage: PAGE,
} as const;

type ScriptCommands = {
  [name in keyof typeof SCRIPTS]: (...args: (string | number)[]) => Promise<unknown>;
};

export interface RunPageQuery {
  limit: number;
  /** `nextCursor` of the previous page; absent for the first page. */
  cursor?: string;
  status?: RunStatus;
  /** Oldest first (default) or newest first. */
  order?: 'asc' | 'desc';
}

export interface RunPage {
  items: RunSummary[];
  /** Null on the last page. Stays valid when runs are added: it names a position, not an offset. */
  nextCursor: string | null;
  /** Runs matching the status filter (all runs without one). */
  total: number;
  /** False after a wipe of Redis: the answer is then incomplete until `rebuild` runs. */
  built: boolean;
}

export type RunPageJson = Omit<RunPage, 'items'> & { summaries: string[] };

export type RunRecordSource = AsyncIterable<RunRecord> | Iterable<RunRecord>;

/** A cursor is the base64url of the last member returned: "<createdAt> <runId>". */
export function encodeRunCursor(member: string): string {
  return Buffer.from(member, 'utf8').toString('base64url');
}

/** The member a cursor points after, or null when the text is not a cursor of this index. */
export function decodeRunCursor(cursor: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  const member = Buffer.from(cursor, 'base64url').toString('utf8');
  return /^.+ \S+$/.test(member) ? member : null;
}

/** createdAt normalised to fixed-width ISO, so byte order is time order; then the id breaks ties. */
function orderMember(record: RunRecord): string {
  const created = Date.parse(record.createdAt);
  return `${Number.isNaN(created) ? record.createdAt : new Date(created).toISOString()} ${record.runId}`;
}

function entryArgs(record: RunRecord): string[] {
  const updated = Date.parse(record.updatedAt);
  const version = Number.isNaN(updated) ? 0 : Math.max(0, Math.trunc(updated));
  return [
    record.runId,
    String(version),
    record.status,
    orderMember(record),
    JSON.stringify(runSummary(record)),
  ];
}

function statusKey(status: RunStatus): string {
  if (!runStatuses.includes(status)) throw new RangeError(`status must be one of ${runStatuses.join(', ')}`);
  return `status:${status}`;
}

/**
 * Run summaries in Redis, kept in step with the run records in S3 (told of every write as their
 * observer), so a runs table pages through thousands of runs without reading storage. Redis may
 * lose it at any time: `isBuilt()` turns false and `rebuild` restores it from the records.
 */
export class RunIndex implements RunRecordObserver {
  private readonly root: string;
  private readonly commands: ScriptCommands;
  private building: Promise<void> | null = null;

  constructor(
    protected readonly redis: Redis,
    prefix: string = QUEUE_PREFIX,
  ) {
    this.root = `${prefix}:run-index`;
    for (const [name, body] of Object.entries(SCRIPTS)) {
      redis.defineCommand(name, { numberOfKeys: 0, lua: LUA_LIBRARY + body });
    }
    this.commands = redis as unknown as ScriptCommands;
  }

  /** Upserts the run's summary unless the index already holds a newer one (by `updatedAt`). */
  async recordWritten(record: RunRecord): Promise<void> {
    await this.commands.runIndexUpsert(this.root, ...entryArgs(record));
  }

  /** True when the run was in the index. */
  async remove(runId: string): Promise<boolean> {
    return (await this.commands.runIndexRemove(this.root, runId)) === 1;
  }

  async page(query: RunPageQuery): Promise<RunPage> {
    const { summaries, ...page } = await this.pageJson(query);
    return { items: summaries.map((summary) => JSON.parse(summary) as RunSummary), ...page };
  }

  /** The same page with each summary as the JSON text stored, to send without decoding it. */
  async pageJson(query: RunPageQuery): Promise<RunPageJson> {
    if (!Number.isInteger(query.limit) || query.limit < 1) {
      throw new RangeError(`limit must be a positive integer, got ${query.limit}`);
    }
    const after = query.cursor === undefined ? '' : decodeRunCursor(query.cursor);
    if (after === null)
      throw new RangeError(`cursor ${JSON.stringify(query.cursor)} is not a run index cursor`);
    const zset = query.status === undefined ? 'order' : statusKey(query.status);
    const [built, total, next, ...summaries] = (await this.commands.runIndexPage(
      this.root,
      zset,
      after,
      query.limit,
      query.order ?? 'asc',
    )) as [number, number, string, ...(string | null)[]];
    return {
      summaries: summaries.filter((summary) => summary !== null),
      nextCursor: next === '' ? null : encodeRunCursor(next),
      total,
      built: built === 1,
    };
  }

  count(status?: RunStatus): Promise<number> {
    return this.redis.zcard(`${this.root}:${status === undefined ? 'order' : statusKey(status)}`);
  }

  /** Ids of queued and running runs, oldest first within each status. */
  async activeRunIds(): Promise<string[]> {
    const members = await Promise.all(
      (['queued', 'running'] as const).map((status) =>
        this.redis.zrange(`${this.root}:${statusKey(status)}`, '0', '-1'),
      ),
    );
    return members.flat().map((member) => member.slice(member.lastIndexOf(' ') + 1));
  }

  /** Drops the index as a wipe of Redis would: `isBuilt()` is false until the next rebuild. */
  async clear(): Promise<void> {
    await this.redis.del(`${this.root}:built`, ...INDEX_KEYS.map((name) => `${this.root}:${name}`));
  }

  async isBuilt(): Promise<boolean> {
    return (await this.redis.exists(`${this.root}:built`)) === 1;
  }

  /**
   * Replaces the whole index with these records: built under temporary keys, then swapped in by one
   * script, so readers see the old index or the new one, never a part. Writes reported while it
   * runs reach the new index too. Returns how many records it read.
   */
  async rebuild(records: RunRecordSource): Promise<number> {
    const token = randomUUID();
    await this.commands.runIndexRebuildBegin(this.root, token, REBUILD_TTL_MS);
    try {
      let count = 0;
      let batch: string[] = [];
      for await (const record of records) {
        batch.push(...entryArgs(record));
        count += 1;
        if (count % REBUILD_BATCH === 0) {
          await this.commands.runIndexRebuildInsert(this.root, token, REBUILD_TTL_MS, ...batch);
          batch = [];
        }
      }
      if (batch.length > 0)
        await this.commands.runIndexRebuildInsert(this.root, token, REBUILD_TTL_MS, ...batch);
      await this.commands.runIndexRebuildSwap(this.root, token, new Date().toISOString());
      return count;
    } catch (error) {
      await this.commands.runIndexRebuildAbort(this.root, token).catch(() => undefined);
      throw error;
    }
  }

  /** Rebuilds from `load()` unless the index is built; concurrent callers share one rebuild. */
  ensureBuilt(load: () => Promise<RunRecordSource>): Promise<void> {
    this.building ??= (async () => {
      if (!(await this.isBuilt())) await this.rebuild(await load());
    })().finally(() => {
      this.building = null;
    });
    return this.building;
  }
}
