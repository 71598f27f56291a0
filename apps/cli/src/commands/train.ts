import type { Command } from 'commander';
import { DataParallelTrainer, NonFiniteLossError, resolveReplicas, selectBackend } from '@dinoq/dino';
import { AugmentPool, resolveDataThreads } from '@dinoq/data';
import {
  configFromFlags,
  collect,
  dataThreadSetting,
  positiveInt,
  replicaSetting,
  type ConfigFlags,
} from '../options';
import { dataDir, LocalRun } from '../local-layout';
import { loadLocalSplit, localSampleOrder } from '../dataset';
import { trainLoop } from '../train-loop';
import { logger } from '../logger';
import { progressBar } from './progress-bar';

interface TrainFlags extends ConfigFlags {
  dataset: string;
  dataDir?: string;
  run?: string;
  steps?: number;
  minutes?: number;
  trainLimit?: number;
  checkpointEvery: number;
  resume?: boolean;
  progress: boolean;
  replicas: ReturnType<typeof replicaSetting>;
  dataThreads: ReturnType<typeof dataThreadSetting>;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('Train a DINO run locally (no queue), writing checkpoints and metrics under the data dir')
    .option('--preset <name>', 'config preset (fmnist-tiny, bench-ref, vit_small_p16)', 'fmnist-tiny')
    .option('--config <file>', 'JSON file with config overrides')
    .option('--set <path=value>', 'override one config value, e.g. train.epochs=2 (repeatable)', collect)
    .option('--dataset <name>', 'dataset name', 'fmnist')
    .option('--data-dir <dir>', 'local storage root (default $DINOQ_DATA_DIR or .data)')
    .option('--run <id>', 'run id (default: local-<time>)')
    .option('--steps <n>', 'stop after n steps in this invocation', positiveInt('--steps'))
    .option('--minutes <m>', 'stop after m minutes', Number)
    .option('--train-limit <n>', 'train on the first n images only', positiveInt('--train-limit'))
    .option(
      '--checkpoint-every <n>',
      'commit a checkpoint every n steps (0: only at the end)',
      positiveInt('--checkpoint-every'),
      0,
    )
    .option('--resume', 'continue the run from its newest committed checkpoint')
    .option(
      '--replicas <n|auto>',
      'data-parallel replicas, one thread each (auto: one per core on the wasm and cpu backends)',
      replicaSetting,
      'auto',
    )
    .option(
      '--data-threads <n|auto>',
      'augmentation threads (auto: one with a single replica, none when replicas leave the main thread idle)',
      dataThreadSetting,
      'auto',
    )
    .option('--no-progress', 'no progress bar')
    .action(async (o: TrainFlags) => {
      const backend = await selectBackend();
      logger.info(backend, 'tfjs backend');
      const root = dataDir(o.dataDir);
      const runId =
        o.run ??
        `local-${new Date()
          .toISOString()
          .replace(/[^0-9]/g, '')
          .slice(0, 14)}`;
      const run = new LocalRun(root, runId);
      const existing = await run.record();
      if (!o.resume && existing) {
        throw new Error(`run "${runId}" already exists in ${run.dir}; pass --resume to continue it`);
      }
      const latest = o.resume ? await run.artifacts.newestCommit() : null;
      const config = latest !== null ? (await run.requireRecord()).config : configFromFlags(o);
      if (config.parallel.slices > 1) {
        logger.warn(
          { slices: config.parallel.slices },
          'parallel.slices applies to queued runs (rounds over many workers); a local run trains sequentially',
        );
      }
      const split = await loadLocalSplit(root, o.dataset, 'train', o.trainLimit);
      const replicas = resolveReplicas(o.replicas, backend, config.train.batchSize);
      const parallel = { replicas, backend: backend.name };
      const trainer =
        latest !== null
          ? await DataParallelTrainer.restore(
              config,
              split.count,
              (await run.artifacts.loadCheckpoint(latest)).files,
              parallel,
            )
          : await DataParallelTrainer.create(config, split.count, parallel);
      const dataThreads = resolveDataThreads(o.dataThreads, replicas);
      const pool = dataThreads > 0 ? AugmentPool.start(split, dataThreads) : undefined;
      await run.writeRecord({ runId, dataset: o.dataset, datasetSize: split.count, backend, config });
      process.stdout.write(
        `run ${runId}: ${trainer.totalSteps} steps (${trainer.itersPerEpoch}/epoch), backend ${backend.name}, ` +
          `${replicas} replica${replicas > 1 ? 's' : ''}, ${dataThreads} augmentation thread(s), dir ${run.dir}\n`,
      );
      const until = o.steps !== undefined ? trainer.step + o.steps : undefined;
      const total = Math.min(until ?? trainer.totalSteps, trainer.totalSteps);
      const bar = o.progress
        ? progressBar('train |{bar}| {value}/{total} loss {loss} H(t) {entropy} KL {kl} lr {lr} {ips} img/s')
        : null;
      bar?.start(total, trainer.step, { loss: '-', entropy: '-', kl: '-', lr: '-', ips: '-' });
      try {
        const res = await trainLoop({
          trainer,
          split,
          pool,
          order: await localSampleOrder(root, o.dataset, split, config.train.seed),
          untilStep: until,
          minutes: o.minutes,
          artifacts: run.artifacts,
          checkpointEvery: o.checkpointEvery,
          onStep: (m) => {
            bar?.update(m.step + 1, {
              loss: m.loss.toFixed(4),
              entropy: m.teacherEntropy.toFixed(3),
              kl: m.klTeacherStudent.toFixed(3),
              lr: m.lr.toExponential(2),
              ips: m.imagesPerSecond.toFixed(1),
            });
            if (!bar) logger.info(m, 'step');
          },
        });
        bar?.stop();
        const last = res.metrics.at(-1);
        const committed = res.checkpoints.at(-1);
        process.stdout.write(
          `trained ${res.steps} steps to step ${trainer.step}; last loss ${last?.loss.toFixed(4) ?? '-'}; ` +
            `checkpoint ${committed === undefined ? '(none)' : run.checkpointDir(committed)}\n`,
        );
      } catch (e) {
        bar?.stop();
        if (e instanceof NonFiniteLossError) {
          logger.error({ runId, step: e.step }, e.message);
          process.exitCode = 3;
          return;
        }
        throw e;
      } finally {
        await Promise.all([trainer.dispose(), pool?.close()]);
      }
    });
}
