import type { Command } from 'commander';
import { FsBlobStore, importFashionMnist } from '@dinoq/data';
import { dataDir } from '../local-layout';
import { logger } from '../logger';
import { positiveInt } from '../options';

export function registerImportFmnist(program: Command): void {
  program
    .command('import-fmnist')
    .description('Import Fashion-MNIST from the Debian package into tar shards + manifest')
    .option('--src <dir>', 'folder with the IDX .gz files', '/usr/share/datasets/fashion-mnist')
    .option('--name <name>', 'dataset name', 'fmnist')
    .option('--data-dir <dir>', 'local storage root (default $DINOQ_DATA_DIR or .data)')
    .option('--limit <n>', 'import only the first n images of each split', positiveInt('--limit'))
    .action(async (o: { src: string; name: string; dataDir?: string; limit?: number }) => {
      const root = dataDir(o.dataDir);
      const t0 = Date.now();
      const manifest = await importFashionMnist({
        srcDir: o.src,
        store: new FsBlobStore(root),
        name: o.name,
        limit: o.limit,
      });
      const counts = Object.entries(manifest.splits).map(([s, v]) => `${s} ${v.count}`);
      logger.info({ dataset: o.name, root, seconds: (Date.now() - t0) / 1000 }, 'imported');
      process.stdout.write(
        `imported ${o.name}: ${counts.join(', ')} images into ${root}/datasets/${o.name}\n`,
      );
    });
}
