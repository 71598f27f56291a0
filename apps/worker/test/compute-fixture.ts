import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planRun, resolveRunConfig, type RunConfig } from '@dinoq/config';
import { selectBackend } from '@dinoq/dino';
import { newRunRecord, RunRepository, type RunRecord } from '@dinoq/jobs';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  ObjectStore,
  createS3Client,
  startEmbeddedS3,
} from '@dinoq/storage';
import { DatasetCache } from '../src/compute/dataset-cache';
import type { ComputeContext, JobScope } from '../src/compute/job-scope';
import type { DataModeSetting } from '../src/compute/training-data';
import type { ComputeJob } from '../src/compute/protocol';

/** A model small enough for the cpu backend: batches of 8, shards of 2 steps. */
export function tinyRunConfig(epochs: number): RunConfig {
  return resolveRunConfig('fmnist-tiny', {
    model: { depth: 1, embedDim: 16, numHeads: 2 },
    head: { outDim: 64, hiddenDim: 32, bottleneckDim: 16 },
    augment: { localCropsNumber: 2 },
    train: { batchSize: 8, epochs, stepsPerShard: 2 },
  });
}

/** What a compute-process job handler works with, over a real s3rver and the tfjs cpu backend. */
export interface ComputeFixture {
  ctx: ComputeContext;
  /** A scope for one job; its log lines are collected in `logs`. */
  scope(name: ComputeJob['name'], data: unknown): JobScope;
  logs: string[];
  /** Writes runs/<id>/run.json for a run of `config` over `datasetName`, as POST /runs does. */
  createRun(runId: string, config: RunConfig, datasetName: string, datasetSize: number): Promise<RunRecord>;
  close(): Promise<void>;
}

export async function startComputeFixture(
  options: { dataMode?: DataModeSetting } = {},
): Promise<ComputeFixture> {
  const backend = await selectBackend('cpu');
  const directory = await mkdtemp(join(tmpdir(), 'dinoq-worker-s3-'));
  const bucket = 'dinoq-worker-test';
  const server = await startEmbeddedS3({ directory, bucket });
  const client = createS3Client({
    endpoint: server.endpoint,
    region: EMBEDDED_S3_REGION,
    ...EMBEDDED_S3_CREDENTIALS,
  });
  const store = new ObjectStore({
    client,
    bucket,
    listing: server.continuationTokens ? 'continuation-token' : 'marker',
  });
  const runs = new RunRepository(store);
  const logs: string[] = [];
  let requestId = 0;
  return {
    ctx: {
      store,
      runs,
      datasets: new DatasetCache(store, 256 * 1024 * 1024),
      backend: { name: backend.name, kind: backend.kind, kernels: backend.kernels, detail: backend.detail },
      trainReplicas: 1,
      dataThreads: 0,
      data: {
        mode: options.dataMode ?? 'auto',
        memoryBudgetBytes: 256 * 1024 * 1024,
        shardCacheDir: join(directory, 'shard-cache'),
        shardCacheBytes: 64 * 1024 * 1024,
      },
      shardCaches: new Map(),
    },
    logs,
    scope: (name, data) => ({
      job: {
        requestId: ++requestId,
        name,
        data,
        jobId: `${name}-${requestId}`,
        queue: 'test',
        workerId: 'w',
        attempt: 1,
      },
      progress: () => undefined,
      log: (_level, message) => logs.push(message),
      throwIfAbandoned: () => undefined,
    }),
    async createRun(runId, config, datasetName, datasetSize) {
      const spec = {
        runId,
        datasetName,
        datasetSize,
        config,
        device: 'cpu' as const,
        ...planRun(datasetSize, config.train),
        retryBudget: 3,
        createdAt: new Date().toISOString(),
      };
      await runs.create(newRunRecord(spec, 'running'));
      return runs.get(runId);
    },
    async close() {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
