import { Inject, Injectable } from '@nestjs/common';
import { ConfigError, estimateStepCost, type RunConfig, type StepCost } from '@dinoq/config';
import { trainQueueFor, type DeviceRequirement, type ListedWorker, type QueueName } from '@dinoq/jobs';
import { API_OPTIONS, type ApiOptions, type StepLimits } from '../api-options';
import { RedisRepository } from '../repositories/redis.repository';
import { withTimeout } from '../with-timeout';

const REGISTRY_TIMEOUT_MS = 3_000;

/** The data pipeline always produces RGB crops (grey images are expanded to three channels). */
const TRAINING_CHANNELS = 3;

/** What the worker registry says about the workers that would take a run's shards. */
export type WorkerCapacity =
  | { kind: 'largest'; workerId: string; deviceClass: string; stepMemoryBytes: number }
  | { kind: 'unchecked'; why: string };

export interface AdmissionInput {
  config: RunConfig;
  cost: StepCost;
  limits: StepLimits;
  capacity: WorkerCapacity;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 2)} ${UNITS[unit]}`;
}

const figure = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });

/** "549.74 MiB (…)": the total and what holds it. */
function memoryBreakdown(cost: StepCost): string {
  const m = cost.memoryBytes;
  const state = m.student + m.teacher + m.gradients + m.optimizer;
  const micro = m.activations + m.attentionMaps + m.headOutputs;
  return (
    `${formatBytes(m.total)} (${cost.parameters.student.toLocaleString('en-US')} parameters with teacher, ` +
    `gradients and AdamW moments ${formatBytes(state)}; activations of a micro-batch of ` +
    `${cost.microBatchSize} images ${formatBytes(micro)}, attention maps ${formatBytes(m.attentionMaps)} of them; ` +
    `input crops ${formatBytes(m.inputBatch)})`
  );
}

const MEMORY_HINT =
  'lower train.microBatchSize (activations grow with it), the crop sizes or augment.localCropsNumber, head.outDim or the model';

/**
 * Every reason a worker could not train `config`, each naming its figures; empty when admitted.
 * Memory is judged against the configured ceiling and, when every worker that would take the run
 * announced its capacity, against the largest of them.
 */
export function admissionReasons({ config, cost, limits, capacity }: AdmissionInput): string[] {
  const reasons: string[] = [];
  if (config.model.inChans !== TRAINING_CHANNELS) {
    reasons.push(
      `model.inChans: training crops always have ${TRAINING_CHANNELS} channels (grey images are expanded), got ${config.model.inChans}`,
    );
  }
  const memory = cost.memoryBytes.total;
  if (memory > limits.maxStepMemoryBytes) {
    reasons.push(
      `step memory: the estimated ${memoryBreakdown(cost)} exceeds DINOQ_MAX_STEP_MEMORY_BYTES ` +
        `(${formatBytes(limits.maxStepMemoryBytes)}); ${MEMORY_HINT}`,
    );
  }
  if (capacity.kind === 'largest' && memory > capacity.stepMemoryBytes) {
    reasons.push(
      `step memory: the estimated ${memoryBreakdown(cost)} exceeds the ${formatBytes(capacity.stepMemoryBytes)} ` +
        `for one step that the largest registered worker announces (${capacity.workerId}, ${capacity.deviceClass}); ${MEMORY_HINT}`,
    );
  }
  const gflops = cost.flopsPerStep / 1e9;
  if (gflops > limits.maxStepGflops) {
    reasons.push(
      `step work: the estimated ${figure.format(gflops)} GFLOP per step (${figure.format(cost.flopsPerImage / 1e9)} ` +
        `per image × train.batchSize ${config.train.batchSize}) exceeds DINOQ_MAX_STEP_GFLOPS ` +
        `(${figure.format(limits.maxStepGflops)})`,
    );
  }
  if (reasons.length > 0 && capacity.kind === 'unchecked') reasons.push(`workers: ${capacity.why}`);
  return reasons;
}

/**
 * The largest step any worker taking `queue` jobs announces, or why it cannot be judged: no such
 * worker, or one whose capacity is unknown (it might hold anything).
 */
export function workerCapacity(workers: readonly ListedWorker[], queue: QueueName): WorkerCapacity {
  const fallback = 'so only DINOQ_MAX_STEP_MEMORY_BYTES was checked';
  if (workers.length === 0) {
    return { kind: 'unchecked', why: `no worker taking ${queue} jobs is registered, ${fallback}` };
  }
  const unknown = workers.filter((worker) => worker.stepMemoryBytes === null);
  if (unknown.length > 0) {
    return {
      kind: 'unchecked',
      why:
        `${unknown.map((worker) => worker.workerId).join(', ')} (taking ${queue} jobs) announce no memory ` +
        `(a GPU worker without DINOQ_GPU_MEMORY_BYTES, or an older worker), ${fallback}`,
    };
  }
  const announced = workers.map((worker) => ({
    kind: 'largest' as const,
    workerId: worker.workerId,
    deviceClass: worker.deviceClass,
    stepMemoryBytes: worker.stepMemoryBytes ?? 0,
  }));
  return announced.reduce((a, b) => (b.stepMemoryBytes > a.stepMemoryBytes ? b : a));
}

/** Refuses at submit a run that no worker could train, instead of letting a worker find out hours later. */
@Injectable()
export class AdmissionService {
  constructor(
    @Inject(API_OPTIONS) private readonly options: ApiOptions,
    private readonly redis: RedisRepository,
  ) {}

  /** Throws a ConfigError (400) listing every reason, with the estimate's figures. */
  async admit(config: RunConfig, device: DeviceRequirement): Promise<void> {
    const cost = estimateStepCost(config);
    const capacity = await this.capacityFor(trainQueueFor(device));
    const reasons = admissionReasons({ config, cost, limits: this.options.stepLimits, capacity });
    if (reasons.length > 0) throw new ConfigError(reasons);
  }

  /**
   * The training speed a budget in minutes is converted with: the slowest measured speed among the
   * live workers that take `device`'s training jobs (a trial may land on any of them), or why there
   * is none.
   */
  async trainingSpeed(
    device: DeviceRequirement,
  ): Promise<{ flopsPerSecond: number; workerId: string } | string> {
    const queue = trainQueueFor(device);
    let workers: ListedWorker[];
    try {
      workers = await this.takers(queue);
    } catch (error) {
      return `the worker registry could not be read (${(error as Error).message})`;
    }
    const measured = workers.flatMap((w) =>
      w.trainFlopsPerSecond === null ? [] : [{ flopsPerSecond: w.trainFlopsPerSecond, workerId: w.workerId }],
    );
    if (measured.length === 0) {
      return workers.length === 0
        ? `no worker taking ${queue} jobs is registered`
        : `no worker taking ${queue} jobs has measured its training speed yet (it does after its first training job)`;
    }
    return measured.reduce((a, b) => (b.flopsPerSecond < a.flopsPerSecond ? b : a));
  }

  /** Workers of this deployment (same queue prefix) that consume `queue`. */
  private async capacityFor(queue: QueueName): Promise<WorkerCapacity> {
    let workers: ListedWorker[];
    try {
      workers = await this.takers(queue);
    } catch (error) {
      return {
        kind: 'unchecked',
        why: `the worker registry could not be read (${(error as Error).message}), so only DINOQ_MAX_STEP_MEMORY_BYTES was checked`,
      };
    }
    return workerCapacity(workers, queue);
  }

  private async takers(queue: QueueName): Promise<ListedWorker[]> {
    const workers = await withTimeout(this.redis.workers(), REGISTRY_TIMEOUT_MS, 'worker registry');
    return workers.filter(
      (worker) => worker.queuePrefix === this.options.queuePrefix && worker.queues.includes(queue),
    );
  }
}
