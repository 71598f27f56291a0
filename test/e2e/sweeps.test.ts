/**
 * Sweeps end to end: the API creates each trial as an ordinary run, a worker process trains them
 * and evaluates their rungs, and the API's sweep controller cancels the worse half at the first
 * rung (successive halving), over a real Redis and s3rver.
 */
import { listCommitted, evalKey, sweepRecordKey, sweepReportKey } from '@dinoq/storage';
import { resolveRunConfig, trainStepFlops } from '@dinoq/config';
import { listWorkers, rungEvalId, sweepReportSchema, type SweepReport } from '@dinoq/jobs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as path from 'node:path';
import { ROOT, buildApp, buildWorker } from './helpers/build';
import { TINY_CONFIG, startStack, waitFor, type E2EStack } from './helpers/stack';
import type { WorkerProcess } from './helpers/worker-process';

jest.setTimeout(180_000);

let stack: E2EStack;
let worker: WorkerProcess;

const CLI_MAIN = path.join(ROOT, 'apps/cli/dist/main.js');

beforeAll(async () => {
  buildWorker();
  buildApp('cli', CLI_MAIN);
  stack = await startStack({ sweepIntervalMs: 250 });
  worker = stack.startWorker('w1', { DINOQ_TRAIN_REPLICAS: '1' });
  await worker.ready();
  await stack.importDataset('fmnist', 32);
});

afterAll(async () => {
  await stack?.close();
});

/** Tiny trials of `steps` steps in shards of 2, ranked by k-NN at half and all of them. */
function sweepRequest(sweepId: string, lrs: number[], steps = 8) {
  return {
    sweepId,
    dataset: 'fmnist',
    preset: 'fmnist-tiny',
    device: 'cpu',
    config: TINY_CONFIG,
    space: { kind: 'grid', parameters: { 'optim.lr': { values: lrs } } },
    metric: { kind: 'knn', k: 20, bankImages: 32, queryImages: 16 },
    budget: { steps },
    earlyStopping: { rungs: 2, eta: 2 },
  };
}

function waitForSweep(sweepId: string, status: string, timeoutMs: number): Promise<SweepReport> {
  return waitFor(
    async () => {
      const answer = await stack.http<SweepReport>('GET', `/sweeps/${sweepId}`);
      return answer.body.status === status ? answer.body : null;
    },
    timeoutMs,
    `sweep ${sweepId} to be ${status}`,
    250,
  );
}

/** Every stopped trial ranked below every trial that went on, at the rung that stopped it. */
function expectHalved(report: SweepReport, kept: number, steps = 8): void {
  const stopped = report.trials.filter((trial) => trial.state === 'stopped');
  const completed = report.trials.filter((trial) => trial.state === 'completed');
  expect(completed).toHaveLength(kept);
  expect(stopped).toHaveLength(report.trials.length - kept);
  const worstKept = Math.min(...completed.map((trial) => trial.rungs[0].value!));
  for (const trial of stopped) {
    expect(trial.stoppedAtRung).toBe(0);
    expect(trial.rungs[0].state).toBe('done');
    expect(trial.rungs[0].value!).toBeLessThanOrEqual(worstKept);
    // Trials train on while a rung's results come in: a slow decision can find a stopped trial
    // already evaluated at the next rung, never completed.
    expect(['skipped', 'done']).toContain(trial.rungs[1].state);
  }
  for (const trial of completed)
    expect(trial.rungs.map((rung) => [rung.step, rung.state])).toEqual([
      [steps / 2, 'done'],
      [steps, 'done'],
    ]);
  const best = completed.reduce((a, b) => (b.rungs[1].value! > a.rungs[1].value! ? b : a));
  expect(report.best).toEqual({
    runId: best.runId,
    rung: 1,
    step: steps,
    value: best.rungs[1].value,
    point: best.point,
  });
}

/** The training speed the stack's worker announces (null until it has trained). */
async function announcedSpeed(): Promise<number | null> {
  const workers = await listWorkers(stack.redis);
  return workers.find((w) => w.queuePrefix === stack.prefix)?.trainFlopsPerSecond ?? null;
}

test('a budget in minutes before any worker has measured its speed is a 400 naming budget.minutes', async () => {
  expect(await announcedSpeed()).toBeNull();
  const refused = await stack.http<{ field: string; message: string }>('POST', '/sweeps', {
    ...sweepRequest('too-soon', [1e-3]),
    budget: { minutes: 1 },
  });
  expect(refused.status).toBe(400);
  expect(refused.body.field).toBe('budget.minutes');
  expect(refused.body.message).toMatch(/has measured its training speed yet.*budget\.flopsPerSecond/);
  expect((await stack.http('GET', '/sweeps/too-soon')).status).toBe(404);
});

test('a sweep of 4 trials over 2 rungs stops the worse half, completes the rest and reports the best', async () => {
  const created = await stack.http<SweepReport>(
    'POST',
    '/sweeps',
    sweepRequest('halving', [1e-4, 1e-3, 1e-2, 3e-2], 16),
  );
  expect(created.status).toBe(201);
  expect(created.body.trials.map((trial) => [trial.runId, trial.point])).toEqual([
    ['halving-t0', { 'optim.lr': 1e-4 }],
    ['halving-t1', { 'optim.lr': 1e-3 }],
    ['halving-t2', { 'optim.lr': 1e-2 }],
    ['halving-t3', { 'optim.lr': 3e-2 }],
  ]);
  // Each trial is an ordinary run, its budget given as train.steps.
  const trial = await stack.runs.get('halving-t2');
  expect(trial).toMatchObject({ totalSteps: 16, stepsPerShard: 2, status: 'queued' });
  expect(trial.config.optim.lr).toBe(1e-2);

  const report = await waitForSweep('halving', 'completed', 150_000);
  expectHalved(report, 2, 16);

  // Stopped trials were cancelled as runs are, before their last shards (the rung is decided 8
  // shards before the end); no rung-1 evaluation was asked of them.
  for (const entry of report.trials) {
    const run = await stack.waitForRun(
      entry.runId,
      (r) => r.status !== 'queued' && r.status !== 'running',
      30_000,
    );
    if (entry.state === 'completed') {
      expect(run).toMatchObject({ status: 'completed', lastCommittedStep: 16 });
    } else {
      expect(run.status).toBe('cancelled');
      expect(run.lastCommittedStep).toBeLessThan(16);
      expect(await stack.store.exists(evalKey(entry.runId, rungEvalId(1)))).toBe(false);
    }
  }
  // The record and the report live in S3 (the controller closes the sweep on its next pass), and
  // the report is the one GET derives.
  await waitFor(
    async () =>
      (await stack.store.getJson<{ status: string }>(sweepRecordKey('halving')))?.status === 'completed',
    10_000,
    'sweep.json to say completed',
  );
  const stored = sweepReportSchema.parse(await stack.store.getJson(sweepReportKey('halving')));
  expect({ ...stored, derivedAt: null }).toEqual({ ...sweepReportSchema.parse(report), derivedAt: null });

  // `dinoq sweep show` prints one row per trial and the best.
  // The API answers in this process: the CLI runs asynchronously so that the API can answer it.
  const { stdout: table } = await promisify(execFile)(process.execPath, [
    CLI_MAIN,
    'sweep',
    'show',
    'halving',
    '--api',
    stack.api.url,
  ]);
  expect(table).toContain('sweep halving: completed; k-NN top-1 % (k 20), higher is better');
  expect(table).toMatch(new RegExp(`${report.best!.runId} \\*\\s+completed\\s+16/16`));
  expect(table.match(/^halving-t\d.*\bstopped\b/gm)).toHaveLength(2);
  expect(table).toContain(`best: ${report.best!.runId}`);
});

test('a budget in minutes becomes steps at the speed the worker measured while training', async () => {
  const flopsPerSecond = await waitFor(announcedSpeed, 30_000, 'w1 to announce its training speed');
  const minutes = 0.05;
  const created = await stack.http('POST', '/sweeps', {
    ...sweepRequest('timed', [1e-3, 1e-2]),
    budget: { minutes },
  });
  expect(created.status).toBe(201);
  const trial = await stack.runs.get('timed-t0');
  const steps = Math.floor((minutes * 60 * flopsPerSecond) / trainStepFlops(trial.config));
  expect(trial.totalSteps).toBe(steps);
  expect(trial.config).toEqual(
    resolveRunConfig('fmnist-tiny', {
      ...TINY_CONFIG,
      optim: { lr: 1e-3 },
      train: { ...TINY_CONFIG.train, steps },
    }),
  );
  expect((await stack.http('POST', '/sweeps/timed/cancel')).status).toBe(200);
  await waitForSweep('timed', 'cancelled', 60_000);
});

test('a bad search space is a 400 naming the path, and nothing is created', async () => {
  const unknown = await stack.http<{ field: string; reasons: string[] }>('POST', '/sweeps', {
    ...sweepRequest('bad-path', [1e-3]),
    space: { kind: 'grid', parameters: { 'optim.lrr': { values: [1e-3] } } },
  });
  expect(unknown.status).toBe(400);
  expect(unknown.body.field).toBe('space.parameters.optim.lrr');
  expect(unknown.body.reasons[0]).toMatch(/^space\.parameters\.optim\.lrr: unknown field "lrr" in optim/);

  const refused = await stack.http<{ field: string; reasons: string[] }>('POST', '/sweeps', {
    ...sweepRequest('bad-value', [1e-3]),
    space: { kind: 'random', seed: 1, parameters: { 'optim.lr': { min: 1e-4, max: 5, log: true } } },
    budget: { steps: 8, trials: 3 },
  });
  expect(refused.status).toBe(400);
  expect(refused.body.field).toBe('space.parameters.optim.lr');
  expect(refused.body.reasons).toEqual([
    expect.stringMatching(/^space\.parameters\.optim\.lr = 5: optim\.lr: /),
  ]);

  for (const sweepId of ['bad-path', 'bad-value']) {
    expect((await stack.http('GET', `/sweeps/${sweepId}`)).status).toBe(404);
    expect(await stack.runs.find(`${sweepId}-t0`)).toBeNull();
  }
});

test('killing the worker mid-sweep loses nothing: another worker finishes the sweep', async () => {
  const created = await stack.http('POST', '/sweeps', sweepRequest('survives', [1e-3, 1e-2]));
  expect(created.status).toBe(201);
  await waitFor(
    async () => (await listCommitted(stack.store, 'survives-t0')).length > 0,
    60_000,
    'a first commit',
  );
  worker.signal('SIGKILL');
  await worker.exited;
  const replacement = stack.startWorker('w2', { DINOQ_TRAIN_REPLICAS: '1' });
  await replacement.ready();

  const report = await waitForSweep('survives', 'completed', 120_000);
  expectHalved(report, 1);
  expect(await listCommitted(stack.store, report.best!.runId)).toEqual([2, 4, 6, 8]);
});
