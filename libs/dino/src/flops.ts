import { resolveModelDims, type RunConfig } from '@dinoq/config';

/**
 * Matmul FLOPs (a multiply-add counts 2) of one forward pass of backbone + head over `images`
 * crops of side `size`. Elementwise work is left out, so achieved GFLOP/s compare directly
 * with a plain matmul's peak.
 */
export function forwardFlops(config: RunConfig, images: number, size: number): number {
  const { embedDim: D, depth } = resolveModelDims(config.model);
  const p = config.model.patchSize;
  const patches = (size / p) ** 2;
  const n = patches + 1;
  const tokens = images * n;
  const hidden = Math.round(D * config.model.mlpRatio);
  const patchEmbed = 2 * images * patches * p * p * config.model.inChans * D;
  const perBlock = 2 * tokens * (4 * D * D + 2 * D * hidden) + 4 * images * n * n * D;
  const h = config.head;
  const dims =
    h.nlayers === 1
      ? [D, h.bottleneckDim]
      : [D, ...Array<number>(h.nlayers - 1).fill(h.hiddenDim), h.bottleneckDim];
  let head = 2 * images * h.bottleneckDim * h.outDim;
  for (let i = 0; i + 1 < dims.length; i++) head += 2 * images * dims[i] * dims[i + 1];
  return patchEmbed + depth * perBlock + head;
}

/** One training step: student forward + backward (≈ 2 forwards) on every crop, teacher forward on the globals. */
export function trainStepFlops(config: RunConfig, batch = config.train.batchSize): number {
  const a = config.augment;
  const studentFwd =
    2 * forwardFlops(config, batch, a.globalCropSize) +
    a.localCropsNumber * forwardFlops(config, batch, a.localCropSize);
  const teacherFwd = 2 * forwardFlops(config, batch, a.globalCropSize);
  return 3 * studentFwd + teacherFwd;
}
