import { Command } from 'commander';
import { registerImportFmnist } from './commands/import-fmnist';
import { registerImportWebDataset } from './commands/import-webdataset';
import { registerTrain } from './commands/train';
import { registerKnn } from './commands/knn';
import { registerDemo } from './commands/demo';
import { registerSweep } from './commands/sweep';
import { registerUp } from './commands/up';

export function buildProgram(): Command {
  const program = new Command()
    .name('dinoq')
    .description('DINO self-supervised ViT training and evaluation on TensorFlow.js')
    .showHelpAfterError();
  registerImportFmnist(program);
  registerImportWebDataset(program);
  registerTrain(program);
  registerKnn(program);
  registerDemo(program);
  registerSweep(program);
  registerUp(program);
  return program;
}
