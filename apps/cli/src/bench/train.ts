import { resolveRunConfig, resolveModelDims, type PresetName } from '@dinoq/config';
import { DinoTrainer, selectBackend, trainStepFlops } from '@dinoq/dino';
import { augmentBatch, batchIndices } from '@dinoq/data';
import { argValue, benchSplit, peakRssMiB } from './bench-data';

/**
 * npm run bench:train [-- --preset bench-ref,fmnist-tiny --steps 3 --warmup 1 --micro 32]
 *
 * Times the full training step (student fwd+bwd on all crops, teacher fwd, loss, AdamW, EMA,
 * center) at batch 64 on pre-augmented real Fashion-MNIST batches, after warm-up steps.
 */
async function main(): Promise<void> {
  const presets = (argValue('preset', 'bench-ref,fmnist-tiny') as string).split(',') as PresetName[];
  const steps = Number(argValue('steps', '3'));
  const warmup = Number(argValue('warmup', '1'));
  const micro = argValue('micro');
  const backend = await selectBackend();
  const split = await benchSplit('train', 512);
  console.log(`backend ${backend.name} (${backend.kernels}); ${split.count} real images loaded`);
  for (const preset of presets) {
    const config = resolveRunConfig(preset, micro ? { train: { microBatchSize: Number(micro) } } : {});
    const trainer = DinoTrainer.create(config, split.count);
    const batches = [];
    for (let s = 0; s < Math.min(warmup + steps, 4); s++) {
      const idx = batchIndices(split.count, config.train.batchSize, config.train.seed, s);
      batches.push(await augmentBatch(split, idx, config.augment, { seed: config.train.seed, epoch: 0 }));
    }
    const times: number[] = [];
    const tensors: number[] = [];
    for (let s = 0; s < warmup + steps; s++) {
      const m = trainer.trainStep(batches[s % batches.length]);
      if (s >= warmup) {
        times.push(m.stepMs);
        tensors.push(m.numTensors);
      }
    }
    trainer.dispose();
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)];
    const gflop = trainStepFlops(config) / 1e9;
    const dims = resolveModelDims(config.model);
    console.log(
      [
        `${preset}: ViT p${config.model.patchSize} d${dims.embedDim} depth ${dims.depth} h${dims.numHeads}, K ${config.head.outDim},`,
        `2x${config.augment.globalCropSize}px + ${config.augment.localCropsNumber}x${config.augment.localCropSize}px, batch ${config.train.batchSize}`,
        `micro ${config.train.microBatchSize || config.train.batchSize}`,
      ].join(' '),
    );
    console.log(
      `  ${(config.train.batchSize / (median / 1000)).toFixed(2)} img/s, ${median.toFixed(0)} ms/step (median of ${steps}),` +
        ` ${gflop.toFixed(1)} GFLOP/step → ${(gflop / (median / 1000)).toFixed(1)} GFLOP/s,` +
        ` peak RSS ${peakRssMiB().toFixed(0)} MiB, tensors/step ${tensors.join(' ')}, backend ${backend.name}`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
