import {
  FsBlobStore,
  loadSplit,
  readManifest,
  splitOf,
  StreamingSampleOrder,
  type DecodedSplit,
} from '@dinoq/data';
import { logger } from './logger';

/**
 * The sample order of the first `count` images of a local split: the order a queued run of the same
 * dataset and seed follows (see libs/data sample-order.ts). Undefined when loading skipped images,
 * which leaves the shards' counts behind; the split's full shuffle is used then.
 */
export async function localSampleOrder(
  root: string,
  dataset: string,
  split: DecodedSplit,
  seed: number,
): Promise<StreamingSampleOrder | undefined> {
  if (split.skipped > 0) return undefined;
  const manifest = await readManifest(new FsBlobStore(root), dataset);
  return StreamingSampleOrder.forPrefix(splitOf(manifest, 'train'), split.count, seed);
}

/** Loads one split of a locally imported dataset into memory, reporting skipped images. */
export async function loadLocalSplit(
  root: string,
  dataset: string,
  split: string,
  limit?: number,
): Promise<DecodedSplit> {
  const store = new FsBlobStore(root);
  const manifest = await readManifest(store, dataset);
  const t0 = Date.now();
  const data = await loadSplit(store, manifest, split, { limit });
  logger.info(
    { dataset, split, images: data.count, skipped: data.skipped, seconds: (Date.now() - t0) / 1000 },
    'split loaded',
  );
  return data;
}
