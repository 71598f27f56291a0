import * as path from 'node:path';
import type { Command } from 'commander';
import { knnLines, type EvaluationReport, type StepMetricsLine } from '@dinoq/jobs';
import { dataDir } from '../local-layout';
import { sleep, startLocalStack } from '../local-stack';
import { positiveInt } from '../options';
import { progressBar } from './progress-bar';

/** About three minutes of training on 2 CPU cores with fmnist-fast. */
const DEMO_STEPS = 600;

interface DemoFlags {
  dataDir?: string;
  images: number;
  steps: number;
  stepsPerShard: number;
  evalEvery: number;
  keep?: boolean;
}

/**
 * The product end to end on one machine: Redis (the one answering), an embedded S3 server, the
 * API and one worker as separate processes; then, over HTTP only: import Fashion-MNIST, submit a
 * training run, schedule a periodic k-NN evaluation, follow the run to the end and print where
 * the results are.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'Start the local stack (embedded S3, API, worker) and run a training job end to end over HTTP',
    )
    .option('--data-dir <dir>', 'local data root (default $DINOQ_DATA_DIR or .data)')
    .option('--images <n>', 'Fashion-MNIST images to import per split', positiveInt('--images'), 3200)
    .option('--steps <n>', 'training steps (batches of 64 images)', positiveInt('--steps'), DEMO_STEPS)
    .option('--steps-per-shard <n>', 'steps per training shard', positiveInt('--steps-per-shard'), 50)
    .option('--eval-every <s>', 'seconds between scheduled k-NN evaluations', positiveInt('--eval-every'), 80)
    .option('--keep', 'keep the stack running after the run (Ctrl-C to stop)')
    .action(async (o: DemoFlags) => runDemo(o));
}

async function runDemo(o: DemoFlags): Promise<void> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const { base, apiKey, s3, call, stop } = await startLocalStack({
    root: dataDir(o.dataDir),
    redisUrl,
    workers: 1,
    port: 0,
  });

  try {
    process.stdout.write(`stack: Redis ${redisUrl}, S3 ${s3.endpoint} (data in ${s3.directory})\n`);
    // Printed once the API answers, and (without --keep) valid until the run ends.
    process.stdout.write(
      `dashboard: ${base}/ui/ — sign in with the API key ${apiKey}\n` +
        (o.keep
          ? 'the stack stays up after the run (--keep); Ctrl-C stops it\n'
          : 'the stack stops when the run ends; "npm run demo -- --keep" keeps it up\n'),
    );
    const dataset = `fmnist-${o.images}`;
    const imported = await call('POST', '/datasets/import', {
      name: dataset,
      source: { kind: 'fashion-mnist', limit: o.images },
    });
    if (imported.status !== 202 && imported.status !== 409)
      throw new Error(`import failed: ${JSON.stringify(imported.json)}`);
    process.stdout.write(`importing Fashion-MNIST (${o.images} images per split) as "${dataset}"...\n`);
    for (;;) {
      const d = await call('GET', `/datasets/${dataset}`);
      if (d.status === 200) break;
      await sleep(1000);
    }
    const runId = `demo-${new Date()
      .toISOString()
      .replace(/[^0-9]/g, '')
      .slice(0, 14)}`;
    const created = await call('POST', '/runs', {
      runId,
      dataset,
      preset: 'fmnist-fast',
      config: { train: { steps: o.steps, stepsPerShard: o.stepsPerShard } },
      device: 'any',
    });
    if (created.status !== 201) throw new Error(`run rejected: ${JSON.stringify(created.json)}`);
    const knn = { ks: [10, 20], trainLimit: o.images, testLimit: Math.min(1000, o.images) };
    await call('POST', '/schedules', {
      scheduleId: `${runId}-knn`,
      runId,
      every: o.evalEvery,
      kinds: ['knn'],
      knn,
    });
    process.stdout.write(`run ${runId} submitted; k-NN evaluation scheduled every ${o.evalEvery} s\n`);

    const bar = progressBar(
      'train |{bar}| {value}/{total} steps, shard {shard}/{shards}, loss {loss}, {ips} img/s, {status}',
    );
    let view = (await call('GET', `/runs/${runId}`)).json as unknown as RunViewLike;
    bar.start(view.progress.totalSteps, 0, {
      shard: 0,
      shards: view.progress.numShards,
      loss: '-',
      ips: '-',
      status: view.status,
    });
    while (view.status !== 'completed' && view.status !== 'failed' && view.status !== 'cancelled') {
      await sleep(2000);
      view = (await call('GET', `/runs/${runId}`)).json as unknown as RunViewLike;
      const m: Partial<StepMetricsLine> = view.latestMetrics ?? {};
      bar.update(Math.min(view.progress.step + (view.latestMetrics ? 1 : 0), view.progress.totalSteps), {
        shard: Math.min(view.progress.shard + 1, view.progress.numShards),
        shards: view.progress.numShards,
        loss: typeof m.loss === 'number' ? m.loss.toFixed(4) : '-',
        ips: typeof m.imagesPerSecond === 'number' ? m.imagesPerSecond.toFixed(1) : '-',
        status: view.status,
      });
    }
    bar.stop();
    if (view.status !== 'completed')
      throw new Error(`run ${runId} ended ${view.status}: ${view.error ?? ''}`);

    const ev = await call('POST', `/runs/${runId}/evaluations`, { kinds: ['knn'], knn });
    const evalId = ev.json.evalId as string;
    for (let done = false, i = 0; !done; i++) {
      const r = await call('GET', `/runs/${runId}/evaluations/${evalId}`);
      if (r.json.status === 'failed') throw new Error(`evaluation failed: ${JSON.stringify(r.json)}`);
      done = r.json.status === 'completed';
      if (!done && i > 600) throw new Error(`evaluation ${evalId} did not finish within 10 minutes`);
      if (!done) await sleep(1000);
    }
    const evals = (await call('GET', `/runs/${runId}/evaluations`)).json as unknown;
    const history = (Array.isArray(evals) ? evals : []) as EvalLike[];
    process.stdout.write(
      `\nrun ${runId} completed: ${view.committedCheckpoints.length} checkpoints committed (steps ${view.committedCheckpoints.join(', ')})\n`,
    );
    process.stdout.write('k-NN history (teacher, weighted votes, T = 0.07):\n');
    const reported = history.filter((h) => h.report).sort((x, y) => x.step - y.step);
    for (const e of reported) {
      const scores = knnLines(e.report?.knn ?? [], e.report?.baselines?.knn).join(', ');
      process.stdout.write(
        `  step ${e.step}${e.report?.scheduled ? ' (scheduled)' : ' (final)'}: ${scores}\n`,
      );
    }
    process.stdout.write(`${learningLine(reported)}\n`);
    process.stdout.write(
      `results: ${path.join(s3.directory, 'dinoq', 'runs', runId)} (run.json, checkpoints/, metrics/, evals/)\n`,
    );
    if (o.keep) {
      process.stdout.write(
        `dashboard: ${base}/ui/#/runs/${runId}; API: ${base} (Authorization: Bearer ${apiKey}); ` +
          'Ctrl-C stops the stack\n',
      );
      await new Promise(() => undefined);
    }
    process.stdout.write('stopping the stack ("npm run demo -- --keep" keeps it up to browse the run)\n');
    await stop(0);
  } catch (e) {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    await stop(1);
  }
}

/** "k=20 top-1 went from 49.1 % (step 150) to 58.3 % (step 1000); random init 47.7 %". */
export function learningLine(history: readonly EvalLike[], k = 20): string {
  const points = history.flatMap((e) => {
    const score = e.report?.knn?.find((s) => s.k === k);
    return score ? [{ step: e.step, top1: score.top1, report: e.report! }] : [];
  });
  if (points.length === 0) return `no k=${k} evaluation completed`;
  const first = points[0];
  const last = points.at(-1)!;
  const random = last.report.baselines?.knn?.randomInit.find((s) => s.k === k);
  const baseline = random ? `; random init ${random.top1.toFixed(1)} %` : '';
  if (points.length === 1) return `k=${k} top-1 ${last.top1.toFixed(1)} % at step ${last.step}${baseline}`;
  return (
    `k=${k} top-1 went from ${first.top1.toFixed(1)} % (step ${first.step}) to ` +
    `${last.top1.toFixed(1)} % (step ${last.step})${baseline}`
  );
}

/** The fields of GET /runs/<id>/evaluations entries the demo prints. */
export interface EvalLike {
  step: number;
  report: EvaluationReport | null;
}

interface RunViewLike {
  status: string;
  error?: string | null;
  progress: { step: number; totalSteps: number; shard: number; numShards: number };
  latestMetrics: Partial<StepMetricsLine> | null;
  committedCheckpoints: number[];
}
