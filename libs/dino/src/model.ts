export { linear, linearConstantInput } from './layers/linear';
export { layerNorm, LAYER_NORM_EPS } from './layers/layer-norm';
export { gelu, type GeluKind } from './layers/gelu';
export { dropPath, dropPathMask, dropPathRates, type DropPathOptions } from './layers/drop-path';
export { reshape, residualAdd, concatRows } from './layers/structural';
export { patchify, patchEmbed, type PatchEmbedding } from './vit/patch-embed';
export {
  posEmbedFor,
  posEmbedMatrix,
  bicubicMatrix,
  sourceCoordinate,
  clearPosEmbedCache,
  type PosEmbedInterpolation,
} from './vit/pos-embed';
export { attention, attentionProbs, type AttentionShape, type AttentionOutput } from './vit/attention';
export { mlp } from './vit/mlp';
export { block, blockAttentionProbs, type BlockContext } from './vit/block';
export { assembleTokens, clsRows } from './vit/tokens';
export { vitForward, lastSelfAttention, intermediateLayers, mlpHiddenDim, type VitOptions } from './vit/vit';
export {
  dinoHead,
  headLinearNames,
  headWidths,
  l2Normalize,
  weightNormalized,
  type HeadOptions,
} from './head';
export { multiCropForward, cropGroups, type MultiCropOptions } from './multi-crop';
export { initDinoParams, paramShapes, isTrainable, cloneParams } from './init';
