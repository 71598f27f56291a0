/**
 * The job catalogue: one enum of queues, one map from queue to payload type. GPU-sized work goes
 * to queues that only GPU workers consume, so a CPU worker never silently trains a GPU run.
 */
export enum QueueName {
  TrainCpu = 'train-cpu',
  TrainGpu = 'train-gpu',
  EvaluateCpu = 'evaluate-cpu',
  EvaluateGpu = 'evaluate-gpu',
  Attention = 'attention',
  Import = 'import',
}

export const allQueues = Object.values(QueueName);

/** BullMQ key prefix: every key of this product lives under `dinoq:`. */
export const QUEUE_PREFIX = 'dinoq';

export type DeviceClass = 'gpu' | 'cpu';
/** What a run asks for; `any` runs on whichever class takes it first (queued on the CPU queues). */
export type DeviceRequirement = DeviceClass | 'any';

export function trainQueueFor(device: DeviceRequirement): QueueName {
  return device === 'gpu' ? QueueName.TrainGpu : QueueName.TrainCpu;
}

export function evaluateQueueFor(device: DeviceRequirement): QueueName {
  return device === 'gpu' ? QueueName.EvaluateGpu : QueueName.EvaluateCpu;
}

/** Queues a worker of this device class consumes by default. A GPU worker also drains CPU work. */
export function defaultQueuesFor(device: DeviceClass): QueueName[] {
  return device === 'gpu'
    ? [
        QueueName.TrainGpu,
        QueueName.EvaluateGpu,
        QueueName.TrainCpu,
        QueueName.EvaluateCpu,
        QueueName.Attention,
      ]
    : [QueueName.TrainCpu, QueueName.EvaluateCpu, QueueName.Attention, QueueName.Import];
}
