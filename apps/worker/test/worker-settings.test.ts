import { QUEUE_PREFIX, QueueName } from '@dinoq/jobs';
import { readWorkerSettings } from '../src/worker-settings';
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
