import { z } from 'zod';
import { isBlobNotFound, type BlobStore } from './blob-store';
import { PermanentDataError } from './errors';

/**
 * A dataset is `datasets/<name>/manifest.json` plus WebDataset-style tar shards under
 * `datasets/<name>/shards/`. The manifest is written last: a dataset without one does not exist.
 */
export const MANIFEST_VERSION = 1;

/** Same rule as libs/storage's ids, so every dataset name is a valid key segment there too. */
const DATASET_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const DATASET_NAME_RULE =
  'must be 1-64 lowercase letters, digits, "-" or "_", starting with a letter or digit';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');

export const shardInfoSchema = z
  .object({
    file: z.string().regex(/^[A-Za-z0-9_-]+-\d{6}\.tar$/, 'must look like "<split>-000000.tar"'),
    count: z.number().int().min(0),
    sha256: sha256Hex,
    bytes: z.number().int().min(0),
  })
  .strict();

/** A split of a dataset whose images keep their own sizes: what memory its decoded images need. */
export const decodedSizeSchema = z
  .object({
    /** Bytes of the split's images decoded at the dataset's channel count. */
    bytes: z.number().int().min(0),
    /** The largest width or height among them. */
    maxSide: z.number().int().min(0),
  })
  .strict();

export const splitInfoSchema = z
  .object({
    count: z.number().int().min(0),
    shards: z.array(shardInfoSchema),
    /** Present exactly when the dataset's images keep their own sizes (no `imageSize`). */
    decoded: decodedSizeSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const sum = s.shards.reduce((acc, sh) => acc + sh.count, 0);
    if (sum !== s.count)
      ctx.addIssue({
        code: 'custom',
        path: ['count'],
        message: `is ${s.count} but the shard counts sum to ${sum}`,
      });
  });

const channelsSchema = z.union([z.literal(1), z.literal(3)]);

/**
 * Two kinds of dataset share one format. Fixed-size (Fashion-MNIST, imports with a resize): every
 * image has `imageSize`. Images that keep their own sizes (photo imports): the top level has
 * `channels` and each split records its decoded bytes and largest side, so a worker can choose
 * memory or streaming without reading a shard.
 */
export const manifestSchema = z
  .object({
    name: z.string().regex(DATASET_NAME, DATASET_NAME_RULE),
    version: z.literal(MANIFEST_VERSION),
    imageSize: z
      .object({
        width: z.number().int().min(1),
        height: z.number().int().min(1),
        channels: channelsSchema,
      })
      .strict()
      .optional(),
    channels: channelsSchema.optional(),
    classes: z.array(z.string().min(1)),
    splits: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/), splitInfoSchema),
    createdAt: z.iso.datetime(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if ((m.imageSize === undefined) === (m.channels === undefined))
      ctx.addIssue({
        code: 'custom',
        path: m.imageSize ? ['channels'] : ['imageSize'],
        message: m.imageSize
          ? 'must be absent when imageSize is given (channels go in imageSize)'
          : 'is required unless channels is given (images that keep their own sizes)',
      });
    for (const [name, split] of Object.entries(m.splits)) {
      if (m.imageSize && split.decoded)
        ctx.addIssue({
          code: 'custom',
          path: ['splits', name, 'decoded'],
          message: 'must be absent when imageSize is given',
        });
      if (!m.imageSize && !split.decoded)
        ctx.addIssue({
          code: 'custom',
          path: ['splits', name, 'decoded'],
          message: 'is required when images keep their own sizes',
        });
    }
  });

export type ShardInfo = z.infer<typeof shardInfoSchema>;
export type SplitInfo = z.infer<typeof splitInfoSchema>;
export type DecodedSize = z.infer<typeof decodedSizeSchema>;
export type DatasetManifest = z.infer<typeof manifestSchema>;

export class ManifestError extends PermanentDataError {
  constructor(
    readonly source: string,
    readonly reasons: string[],
  ) {
    super(`invalid dataset manifest ${source}: ${reasons.join('; ')}`);
    this.name = 'ManifestError';
  }
}

function checkDatasetName(dataset: string): string {
  if (!DATASET_NAME.test(dataset)) throw new Error(`invalid dataset name "${dataset}": ${DATASET_NAME_RULE}`);
  return dataset;
}

// These two keys must agree with libs/storage's datasetManifestKey / datasetShardKey (the
// bucket layout's single description); libs/data does not depend on the S3 client package.
export function manifestKey(dataset: string): string {
  return `datasets/${checkDatasetName(dataset)}/manifest.json`;
}

export function shardKey(dataset: string, file: string): string {
  return `datasets/${checkDatasetName(dataset)}/shards/${file}`;
}

export function shardFileName(split: string, index: number): string {
  return `${split}-${String(index).padStart(6, '0')}.tar`;
}

/** Validates; the error lists every problem with its field path (`splits.train.shards.0.sha256: …`). */
export function parseManifest(input: unknown, source = '(manifest)'): DatasetManifest {
  const r = manifestSchema.safeParse(input);
  if (r.success) return r.data;
  throw new ManifestError(
    source,
    r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`),
  );
}

export async function readManifest(store: BlobStore, dataset: string): Promise<DatasetManifest> {
  const key = manifestKey(dataset);
  const bytes = await store.get(key);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new ManifestError(key, [`not valid JSON (${(err as Error).message})`]);
  }
  return parseManifest(json, key);
}

/** The manifest, or undefined when the dataset has none yet. */
export async function tryReadManifest(
  store: BlobStore,
  dataset: string,
): Promise<DatasetManifest | undefined> {
  try {
    return await readManifest(store, dataset);
  } catch (err) {
    if (isBlobNotFound(err)) return undefined;
    throw err;
  }
}

export async function writeManifest(store: BlobStore, manifest: DatasetManifest): Promise<void> {
  const valid = parseManifest(manifest, `for dataset "${manifest.name}"`);
  await store.put(manifestKey(valid.name), Buffer.from(`${JSON.stringify(valid, null, 2)}\n`, 'utf8'));
}

export function splitOf(manifest: DatasetManifest, split: string): SplitInfo {
  const info = manifest.splits[split];
  if (!info) {
    const known = Object.keys(manifest.splits).join(', ') || 'none';
    throw new Error(`dataset "${manifest.name}" has no split "${split}" (splits: ${known})`);
  }
  return info;
}

/** The channel count the dataset's images decode to. */
export function manifestChannels(manifest: DatasetManifest): 1 | 3 {
  const channels = manifest.imageSize?.channels ?? manifest.channels;
  if (channels === undefined) throw new Error(`dataset "${manifest.name}": manifest has no channel count`);
  return channels;
}

/** Bytes a split's images take decoded with the dataset's channels. */
export function splitDecodedBytes(manifest: DatasetManifest, split: string): number {
  const info = splitOf(manifest, split);
  const fixed = manifest.imageSize;
  if (fixed) return info.count * fixed.width * fixed.height * fixed.channels;
  if (!info.decoded) throw new Error(`dataset "${manifest.name}" split "${split}" has no decoded size`);
  return info.decoded.bytes;
}

/** The one size of a fixed-size dataset; `what` names the caller that cannot take images of several sizes. */
export function fixedImageSize(
  manifest: DatasetManifest,
  what: string,
): NonNullable<DatasetManifest['imageSize']> {
  if (!manifest.imageSize)
    throw new Error(`${what}: dataset "${manifest.name}" keeps each image's own size (no imageSize)`);
  return manifest.imageSize;
}
