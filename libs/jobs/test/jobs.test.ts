import {
  JobProducer,
  QueueName,
  nextShard,
  parseJob,
  redisConnectionFromEnv,
  shardJobId,
  shardRange,
} from '../src';

describe('job catalogue', () => {
  it('validates payloads and names the bad field', () => {
    expect(parseJob('train-shard', { runId: 'r1', shard: 0, fromStep: 0, toStep: 10 })).toEqual({
      runId: 'r1',
      shard: 0,
      fromStep: 0,
      toStep: 10,
    });
    expect(() => parseJob('train-shard', { runId: '../etc', shard: 0, fromStep: 0, toStep: 10 })).toThrow(
      /invalid train-shard job payload: runId: must be/,
    );
    expect(() => parseJob('evaluate', { runId: 'r', evalId: 'e', step: null, kinds: [] })).toThrow(/kinds/);
  });

  it('plans shards and job ids', () => {
    const run = { stepsPerShard: 4, totalSteps: 10 };
    expect(shardRange(run, 0)).toEqual({ fromStep: 0, toStep: 4 });
    expect(shardRange(run, 2)).toEqual({ fromStep: 8, toStep: 10 });
    expect(nextShard(run, null)).toBe(0);
    expect(nextShard(run, 4)).toBe(1);
    expect(nextShard(run, 10)).toBeNull();
    expect(shardJobId('run-a', 2, 3)).toBe('run-a-g2-shard-3');
    expect(() => shardJobId('a:b', 0, 0)).toThrow(/runId/);
  });

  it('reads REDIS_URL', () => {
    expect(redisConnectionFromEnv({ REDIS_URL: 'redis://:p%40ss@example:6390/2' })).toMatchObject({
      host: 'example',
      port: 6390,
      password: 'p@ss',
      db: 2,
      maxRetriesPerRequest: null,
    });
    expect(() => redisConnectionFromEnv({ REDIS_URL: 'http://x' })).toThrow(/REDIS_URL/);
  });
});

describe('JobProducer (real Redis)', () => {
  // A prefix of its own: obliterating the queue must never touch a live stack's jobs.
  const producer = new JobProducer(redisConnectionFromEnv(), `dinoq-test-${process.pid}`);
  afterAll(() => producer.close());

  it('enqueues typed jobs idempotently and refuses the wrong queue', async () => {
    const q = producer.queue(QueueName.Import);
    await q.obliterate({ force: true });
    const data = { datasetName: 'd1', source: { kind: 'fashion-mnist' as const, limit: 5 } };
    const a = await producer.add(QueueName.Import, 'import', data, { jobId: 'import-d1' });
    const b = await producer.add(QueueName.Import, 'import', data, { jobId: 'import-d1' });
    expect(a.id).toBe('import-d1');
    expect(b.id).toBe('import-d1');
    expect(await q.getWaitingCount()).toBe(1);
    await expect(producer.add(QueueName.TrainCpu, 'import', data)).rejects.toThrow(
      /cannot run on queue "train-cpu"/,
    );
    await expect(
      producer.add(QueueName.Import, 'import', { datasetName: 'A/B', source: { kind: 'fashion-mnist' } }),
    ).rejects.toThrow();
    expect((await producer.counts())[QueueName.Import].waiting).toBe(1);
    await q.obliterate({ force: true });
  });
});
