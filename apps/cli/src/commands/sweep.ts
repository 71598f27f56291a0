import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { SweepReport } from '@dinoq/jobs';

interface ApiFlags {
  api: string;
  apiKey?: string;
  watch?: boolean;
  interval: number;
}

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

function formatValue(value: number | null): string {
  return value === null ? '' : value.toFixed(value >= 100 ? 1 : 3).replace(/\.?0+$/, '');
}

/** One row per trial: its state, its newest step, the value at each rung, and what it sets. */
export function formatSweepTable(report: SweepReport): string {
  const rungs = Math.max(0, ...report.trials.map((trial) => trial.rungs.length));
  const header = [
    'trial',
    'state',
    'step',
    ...Array.from({ length: rungs }, (_, i) => `rung ${i}`),
    'overrides',
  ];
  const rows = report.trials.map((trial) => [
    trial.runId + (report.best?.runId === trial.runId ? ' *' : ''),
    trial.state,
    `${trial.step ?? 0}/${trial.totalSteps ?? '?'}`,
    ...Array.from({ length: rungs }, (_, i) => {
      const rung = trial.rungs[i];
      return rung?.state === 'done' ? formatValue(rung.value) : (rung?.state ?? '');
    }),
    Object.entries(trial.point)
      .map(([path, value]) => `${path}=${JSON.stringify(value)}`)
      .join(' '),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]))
      .join('  ')
      .trimEnd();
  const best = report.best
    ? `best: ${report.best.runId} ${formatValue(report.best.value)} at rung ${report.best.rung} (step ${report.best.step})`
    : 'best: none yet';
  return [
    `sweep ${report.sweepId}: ${report.status}; ${report.metric.label}, ${report.metric.better} is better`,
    line(header),
    ...rows.map(line),
    best,
    '',
  ].join('\n');
}

async function call<T>(flags: ApiFlags, method: string, route: string, body?: unknown): Promise<T> {
  const response = await fetch(flags.api.replace(/\/$/, '') + route, {
    method,
    headers: {
      ...(flags.apiKey ? { authorization: `Bearer ${flags.apiKey}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const json = text ? (JSON.parse(text) as unknown) : null;
  if (!response.ok) {
    const error = json as { message?: string; reasons?: string[] } | null;
    const reasons = error?.reasons?.map((reason) => `\n  ${reason}`).join('') ?? '';
    throw new Error(`${method} ${route}: HTTP ${response.status} ${error?.message ?? text}${reasons}`);
  }
  return json as T;
}

/** Prints the table, and with --watch again every interval until the sweep ends. */
async function show(flags: ApiFlags, sweepId: string): Promise<void> {
  for (;;) {
    const report = await call<SweepReport>(flags, 'GET', `/sweeps/${encodeURIComponent(sweepId)}`);
    process.stdout.write(formatSweepTable(report));
    if (!flags.watch || TERMINAL.has(report.status)) return;
    await new Promise((resolve) => setTimeout(resolve, flags.interval * 1000));
  }
}

function withApiOptions(command: Command): Command {
  return command
    .option('--api <url>', 'API base URL', process.env.DINOQ_API_URL ?? 'http://127.0.0.1:3000')
    .option('--api-key <key>', 'bearer key (default $DINOQ_API_KEY)', process.env.DINOQ_API_KEY)
    .option('--watch', 'print the table again until the sweep ends')
    .option('--interval <seconds>', 'seconds between tables with --watch', Number, 10);
}

export function registerSweep(program: Command): void {
  const sweep = program
    .command('sweep')
    .description('Hyper-parameter sweeps over the API: trials are runs, the worse stopped at rungs');
  withApiOptions(
    sweep
      .command('submit <file>')
      .description(
        'POST /sweeps with a JSON request: {dataset, preset, config, space, metric, budget, earlyStopping}',
      ),
  ).action(async (file: string, flags: ApiFlags) => {
    let request: unknown;
    try {
      request = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`cannot read sweep request ${file}: ${(error as Error).message}`);
    }
    const created = await call<SweepReport>(flags, 'POST', '/sweeps', request);
    process.stdout.write(formatSweepTable(created));
    if (flags.watch) await show(flags, created.sweepId);
  });
  withApiOptions(sweep.command('show <id>').description('The progress table of a sweep')).action(
    (sweepId: string, flags: ApiFlags) => show(flags, sweepId),
  );
}
