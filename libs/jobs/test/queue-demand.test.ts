import { QueueName, busyWorkersPerQueue, type ActiveJobRef } from '../src';

const active = (queue: QueueName, jobId: string, worker: string | null): ActiveJobRef => ({
  queue,
  jobId,
  worker,
});

describe('busyWorkersPerQueue', () => {
  it('charges a worker once, to the queue of the job it holds the device for', () => {
    const jobs = [
      active(QueueName.TrainGpu, 't1', 'pod-a'),
      // Same pod, waiting for the device mutex: no pod of its own.
      active(QueueName.EvaluateGpu, 'e1', 'pod-a'),
      active(QueueName.EvaluateGpu, 'e2', 'pod-b'),
    ];
    const holding = new Map([
      ['pod-a', 'evaluate-gpu/e1'],
      ['pod-b', 'evaluate-gpu/e2'],
    ]);
    expect(Object.fromEntries(busyWorkersPerQueue(jobs, holding))).toEqual({ 'evaluate-gpu': 2 });
  });

  it('without a heartbeat naming one of its jobs, charges the first of its queues in catalogue order', () => {
    const jobs = [active(QueueName.EvaluateGpu, 'e1', 'pod-a'), active(QueueName.TrainGpu, 't1', 'pod-a')];
    expect(Object.fromEntries(busyWorkersPerQueue(jobs, new Map()))).toEqual({ 'train-gpu': 1 });
    // A heartbeat naming a job the worker no longer holds changes nothing.
    const stale = new Map([['pod-a', 'evaluate-gpu/gone']]);
    expect(Object.fromEntries(busyWorkersPerQueue(jobs, stale))).toEqual({ 'train-gpu': 1 });
  });

  it('counts every active job without a recorded worker as a pod of its own', () => {
    const jobs = [active(QueueName.TrainGpu, 't1', null), active(QueueName.TrainGpu, 't2', null)];
    expect(Object.fromEntries(busyWorkersPerQueue(jobs, new Map()))).toEqual({ 'train-gpu': 2 });
  });
});
