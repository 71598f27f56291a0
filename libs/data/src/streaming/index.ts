export * from './sample-order';
export * from './pinned-lru';
export * from './shard-cache';
export * from './streaming-reader';
export * from './keyed-augment';
export * from './augment-pool';
export * from './streaming-batches';
export * from './tar-index';
