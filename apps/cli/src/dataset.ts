import { FsBlobStore, loadSplit, readManifest, type DecodedSplit } from '@dinoq/data';
import { logger } from './logger';

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
