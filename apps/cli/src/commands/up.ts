import type { Command } from 'commander';
import { dataDir } from '../local-layout';
import { startLocalStack } from '../local-stack';
import { positiveInt } from '../options';

interface UpFlags {
  dataDir?: string;
  workers: number;
  port: number;
  apiKey?: string;
}

/**
 * The local stack kept up: the API (with its dashboard) and worker processes over the Redis that
 * answers and an embedded S3 server, for runs, evaluations and sweeps submitted over HTTP or with
 * `dinoq sweep`. Several workers on one machine share its cores (each is one compute process).
 */
export function registerUp(program: Command): void {
  program
    .command('up')
    .description('Start the local stack (embedded S3, API, workers) and keep it up until Ctrl-C')
    .option('--data-dir <dir>', 'local data root (default $DINOQ_DATA_DIR or .data)')
    .option('--workers <n>', 'worker processes', positiveInt('--workers'), 1)
    .option('--port <n>', 'API port (0: any free port)', positiveInt('--port'), 3000)
    .option(
      '--api-key <key>',
      'bearer key of the API (default $DINOQ_API_KEY, else a random one)',
      process.env.DINOQ_API_KEY,
    )
    .action(async (o: UpFlags) => {
      if (o.workers < 1) throw new Error('--workers must be at least 1');
      const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      const stack = await startLocalStack({
        root: dataDir(o.dataDir),
        redisUrl,
        workers: o.workers,
        port: o.port,
        apiKey: o.apiKey,
      });
      process.stdout.write(
        `stack: Redis ${redisUrl}, S3 ${stack.s3.endpoint} (data in ${stack.s3.directory}), ${o.workers} worker(s)\n` +
          `dashboard: ${stack.base}/ui/ — sign in with the API key\n` +
          `for the CLI: export DINOQ_API_URL=${stack.base} DINOQ_API_KEY=${stack.apiKey}\n` +
          'Ctrl-C stops the stack\n',
      );
      await new Promise(() => undefined);
    });
}
