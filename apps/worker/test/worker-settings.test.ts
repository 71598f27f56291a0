import { QUEUE_PREFIX, QueueName } from '@dinoq/jobs';
import { readWorkerSettings, shutdownTimings } from '../src/worker-settings';
import { scheduledEvalId, scheduledEvalJobId } from '../src/evaluate-sweep';

describe('readWorkerSettings', () => {
  test('defaults: local Redis, auto backend, 30 s locks, 20 s grace, product prefix', () => {
    const s = readWorkerSettings({});
    expect(s).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      deviceClass: undefined,
      queues: undefined,
      backend: 'auto',
      lockMs: 30_000,
      shutdownGraceMs: 20_000,
      queuePrefix: QUEUE_PREFIX,
      trainReplicas: 'auto',
    });
    expect(s.storage.S3_ENDPOINT).toBeUndefined();
  });

  test('reads every setting', () => {
    const s = readWorkerSettings({
      REDIS_URL: 'redis://redis:6380/2',
      S3_ENDPOINT: 'http://minio:9000',
      S3_BUCKET: 'b1',
      DINOQ_DEVICE_CLASS: 'gpu',
      DINOQ_WORKER_QUEUES: 'train-gpu, evaluate-gpu,train-gpu',
      DINOQ_BACKEND: 'tensorflow-gpu',
      DINOQ_LOCK_MS: '3000',
      DINOQ_SHUTDOWN_GRACE_MS: '0',
      DINOQ_QUEUE_PREFIX: 'e2e-1',
      DINOQ_TRAIN_REPLICAS: '3',
    });
    expect(s).toMatchObject({
      redisUrl: 'redis://redis:6380/2',
      deviceClass: 'gpu',
      queues: [QueueName.TrainGpu, QueueName.EvaluateGpu],
      backend: 'tensorflow-gpu',
      lockMs: 3000,
      shutdownGraceMs: 0,
      queuePrefix: 'e2e-1',
      trainReplicas: 3,
    });
    expect(s.storage).toMatchObject({ S3_ENDPOINT: 'http://minio:9000', S3_BUCKET: 'b1' });
  });

  test('names every bad variable in one error', () => {
    let message = '';
    try {
      readWorkerSettings({
        DINOQ_DEVICE_CLASS: 'tpu',
        DINOQ_WORKER_QUEUES: 'train-cpu,nope',
        DINOQ_BACKEND: 'webgl',
        DINOQ_LOCK_MS: '10',
        DINOQ_TRAIN_REPLICAS: '0',
      });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/DINOQ_DEVICE_CLASS must be gpu or cpu, got "tpu"/);
    expect(message).toMatch(/DINOQ_WORKER_QUEUES names unknown queues \(nope\)/);
    expect(message).toMatch(/DINOQ_BACKEND must be one of/);
    expect(message).toMatch(/DINOQ_LOCK_MS must be an integer in \[1000,/);
    expect(message).toMatch(/DINOQ_TRAIN_REPLICAS must be "auto" or an integer in \[1, 256\], got "0"/);
  });
});

describe('shutdown timings', () => {
  test('without a termination budget: the grace setting (20 s by default), then as long again to stop', () => {
    expect(readWorkerSettings({})).toMatchObject({ shutdownGraceMs: 20_000, abandonWaitMs: 20_000 });
    expect(shutdownTimings(0, undefined)).toEqual({ shutdownGraceMs: 0, abandonWaitMs: 5_000 });
  });

  test('derives the grace from DINOQ_TERMINATION_GRACE_SECONDS so the whole stop fits inside it', () => {
    // Kubernetes GPU workers: 30 min; the job runs on for 26 min 55 s, gets 3 min to stop, 5 s to close.
    const gpu = readWorkerSettings({ DINOQ_TERMINATION_GRACE_SECONDS: '1800' });
    expect(gpu).toMatchObject({ shutdownGraceMs: 1_615_000, abandonWaitMs: 180_000 });
    for (const seconds of [10, 30, 600, 1800, 86_400]) {
      const { shutdownGraceMs, abandonWaitMs } = shutdownTimings(undefined, seconds);
      expect(shutdownGraceMs).toBeGreaterThanOrEqual(0);
      expect(abandonWaitMs).toBeGreaterThanOrEqual(5_000);
      expect(shutdownGraceMs + abandonWaitMs + 5_000).toBe(seconds * 1000);
    }
    // compose's default stop_grace_period of 10 s leaves the job no time to finish, only to stop.
    expect(shutdownTimings(undefined, 10)).toEqual({ shutdownGraceMs: 0, abandonWaitMs: 5_000 });
  });

  test('an explicit grace must fit the termination budget, and a budget under 10 s is refused', () => {
    expect(
      readWorkerSettings({ DINOQ_TERMINATION_GRACE_SECONDS: '600', DINOQ_SHUTDOWN_GRACE_MS: '60000' }),
    ).toMatchObject({ shutdownGraceMs: 60_000, abandonWaitMs: 60_000 });
    expect(() =>
      readWorkerSettings({ DINOQ_TERMINATION_GRACE_SECONDS: '600', DINOQ_SHUTDOWN_GRACE_MS: '600000' }),
    ).toThrow(
      /DINOQ_SHUTDOWN_GRACE_MS=600000 does not fit DINOQ_TERMINATION_GRACE_SECONDS=600: at most 535000 ms/,
    );
    expect(() => readWorkerSettings({ DINOQ_TERMINATION_GRACE_SECONDS: '5' })).toThrow(
      /DINOQ_TERMINATION_GRACE_SECONDS must be an integer in \[10, 86400\], got "5"/,
    );
  });
});

describe('scheduled evaluation ids', () => {
  test('one id per schedule and step, always a valid key segment', () => {
    expect(scheduledEvalId('sweep-abc', 40)).toBe('sweep-abc-s40');
    expect(scheduledEvalJobId('run-1', 'sweep-abc', 40)).toBe('run-1-sweep-abc-s40');
    const long = scheduledEvalId('x'.repeat(64), 123456);
    expect(long).toMatch(/^sched-[0-9a-f]{12}-s123456$/);
    expect(long.length).toBeLessThanOrEqual(64);
    expect(scheduledEvalId('x'.repeat(64), 1)).not.toBe(scheduledEvalId('y'.repeat(64), 1));
  });
});
