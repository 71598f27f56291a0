#!/usr/bin/env node
import { Command } from 'commander';
import { registerImportFmnist } from './commands/import-fmnist';
import { registerTrain } from './commands/train';
import { registerKnn } from './commands/knn';
import { logger } from './logger';

const program = new Command()
  .name('dinoq')
  .description('DINO self-supervised ViT training and evaluation on TensorFlow.js')
  .showHelpAfterError();
registerImportFmnist(program);
registerTrain(program);
registerKnn(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  logger.error({ err: e }, (e as Error).message);
  process.exitCode = 1;
});
