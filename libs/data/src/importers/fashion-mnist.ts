import * as path from 'node:path';
import type { BlobStore } from '../blob-store';
import { DatasetSourceError } from '../errors';
import { MANIFEST_VERSION, writeManifest, type DatasetManifest, type SplitInfo } from '../manifest';
import { encodePng } from '../png';
import { ShardWriter } from '../shard-writer';
import { readIdxImagesAndLabels } from './idx';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Where the Debian package `dataset-fashion-mnist` puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

const SOURCES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

export interface ImportFashionMnistOptions {
  srcDir?: string;
  store: BlobStore;
  name: string;
  shardSize?: number;
  /** Import only the first `limit` images of each split. */
  limit?: number;
}

/** Sample keys are the zero-padded index within the split, so shard order is source order. */
export function sampleKey(index: number): string {
  return String(index).padStart(8, '0');
}

/** Converts the IDX files into grayscale PNG tar shards and writes the manifest last. */
export async function importFashionMnist(options: ImportFashionMnistOptions): Promise<DatasetManifest> {
  const srcDir = options.srcDir ?? FASHION_MNIST_DIR;
  const splits: Record<string, SplitInfo> = {};
  let size = { width: 28, height: 28 };
  for (const [split, files] of Object.entries(SOURCES)) {
    const src = await readIdxImagesAndLabels(
      path.join(srcDir, files.images),
      path.join(srcDir, files.labels),
      FASHION_MNIST_CLASSES.length,
    ).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      throw new DatasetSourceError(
        `Fashion-MNIST source ${error.path ?? srcDir} is missing: install the Debian package ` +
          'dataset-fashion-mnist (scripts/setup.sh does) or point srcDir at the IDX files',
      );
    });
    size = { width: src.width, height: src.height };
    const frame = src.width * src.height;
    const count = Math.min(src.count, options.limit ?? Infinity);
    const writer = new ShardWriter(options.store, {
      dataset: options.name,
      split,
      shardSize: options.shardSize ?? 10000,
    });
    for (let i = 0; i < count; i++) {
      await writer.add({
        key: sampleKey(i),
        image: encodePng(src.images.subarray(i * frame, (i + 1) * frame), src.width, src.height, 1),
        label: src.labels[i],
      });
    }
    splits[split] = await writer.finish();
  }
  const manifest: DatasetManifest = {
    name: options.name,
    version: MANIFEST_VERSION,
    imageSize: { ...size, channels: 1 },
    classes: [...FASHION_MNIST_CLASSES],
    splits,
    createdAt: new Date().toISOString(),
  };
  await writeManifest(options.store, manifest);
  return manifest;
}
