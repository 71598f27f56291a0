import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { DatasetSourceError } from '../errors';
import { IMAGE_EXTENSIONS, splitMemberName } from '../shard-reader';
import {
  ImageSplitImport,
  type ImageSplitOptions,
  type ImageToImport,
  type ImportImagesResult,
} from './image-split';

/** One tar to read, from wherever it lives (a local file, an S3 object). */
export interface TarSource {
  /** How skip reasons and errors name it (a path or an object key). */
  name: string;
  /** Size in bytes when known, for progress totals. */
  bytes?: number;
  open(): Promise<AsyncIterable<Uint8Array>>;
}

export interface WebDatasetProgress {
  images: number;
  skipped: number;
  bytesRead: number;
}

export interface ImportWebDatasetOptions extends ImageSplitOptions {
  /** Read in order; a tar that turns out truncated or unreadable is skipped from that point on. */
  sources: TarSource[];
  /**
   * Name of each class index (line i of a `classes.txt` names class i). Without it, and without
   * an existing manifest whose classes then serve as the names, classes are named by their index.
   */
  classNames?: string[];
  onProgress?: (progress: WebDatasetProgress) => void;
}

export type ImportWebDatasetResult = ImportImagesResult;

/** Local files as tar sources, in the order given. */
export async function localTarSources(paths: string[]): Promise<TarSource[]> {
  return Promise.all(
    paths.map(async (file) => {
      const info = await stat(file).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') throw new DatasetSourceError(`tar file ${file} does not exist`);
        throw error;
      });
      return { name: file, bytes: info.size, open: async () => createReadStream(file) };
    }),
  );
}

const BATCH = 64;

/** A tar that ended early or is not a tar: the members read before the fault still count. */
class TarReadError extends Error {}

interface Member {
  name: string;
  body: Uint8Array;
}

/**
 * A tar's file members with their bodies, streamed. Faults in the tar itself surface as
 * TarReadError; a failing source (a dropped connection) keeps its own error so it can be retried.
 */
async function* tarMembers(
  source: AsyncIterable<Uint8Array>,
  onBytes: (n: number) => void,
): AsyncGenerator<Member> {
  let sourceError: unknown;
  const counted = Readable.from(
    (async function* () {
      for await (const chunk of source) {
        onBytes(chunk.length);
        yield chunk;
      }
    })(),
  );
  const extract = tar.extract();
  counted.on('error', (error) => {
    sourceError = error;
    extract.destroy(error);
  });
  counted.pipe(extract);
  try {
    for await (const entry of extract) {
      const parts: Uint8Array[] = [];
      for await (const part of entry) parts.push(part as Uint8Array);
      if (entry.header.type === 'file') yield { name: entry.header.name, body: Buffer.concat(parts) };
    }
  } catch (error) {
    if (sourceError !== undefined) throw sourceError;
    throw new TarReadError((error as Error).message);
  } finally {
    counted.destroy();
  }
}

/** The members of one key, as consecutive tar members (the WebDataset grouping). */
interface Sample {
  key: string;
  images: Member[];
  cls?: Member;
}

/** Member groups that share a key; unknown extensions are reported and left out. */
async function* samplesOf(
  members: AsyncIterable<Member>,
  unknown: (m: Member) => void,
): AsyncGenerator<Sample> {
  let current: Sample | undefined;
  try {
    for await (const member of members) {
      const { key, ext } = splitMemberName(member.name);
      if (current && current.key !== key) {
        yield current;
        current = undefined;
      }
      current ??= { key, images: [] };
      if (IMAGE_EXTENSIONS.has(ext)) current.images.push(member);
      else if (ext === 'cls') current.cls = member;
      else unknown(member);
    }
  } catch (error) {
    // The members read before a fault are whole, so the last key still counts if it is complete.
    if (current && error instanceof TarReadError) yield current;
    throw error;
  }
  if (current) yield current;
}

/** The class index of a `.cls` body, or why there is none. */
function parseClassIndex(body: Uint8Array): number | string {
  const text = Buffer.from(body).toString('utf8').trim();
  if (!/^\d+$/.test(text)) return `.cls "${text.slice(0, 20)}" is not a non-negative integer`;
  return Number(text);
}

/** The image and label a sample gives, or why it gives none. */
function checkSample(
  sample: Sample,
  classNames: string[] | undefined,
): { image: Member; label: number } | string | undefined {
  // A key of unknown members only: each member is already listed.
  if (sample.images.length === 0 && !sample.cls) return undefined;
  if (sample.images.length === 0) return 'no image member';
  if (sample.images.length > 1)
    return `several image members (${sample.images.map((m) => m.name).join(', ')})`;
  const [image] = sample.images;
  if (image.body.length === 0) return `empty image member ${image.name}`;
  if (!sample.cls) return 'no .cls member';
  const label = parseClassIndex(sample.cls.body);
  if (typeof label === 'string') return label;
  if (classNames && label >= classNames.length)
    return `class ${label} has no name (${classNames.length} class names)`;
  return { image, label };
}

/** Every class index up to the largest, named by `classNames` when given, else by the index. */
function classList(maxLabel: number, classNames: string[] | undefined): string[] {
  return classNames ?? Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
}

/**
 * Imports WebDataset tars (`<key>.png|jpg|jpeg|webp` + `<key>.cls` holding the class index) as
 * one split, streaming each tar so none has to fit in memory. Samples keep their `.cls` index as
 * their label. Bad samples (unreadable or empty images, missing or non-integer `.cls`, unknown
 * extensions) are skipped and listed; a truncated tar is listed and the next tar is read.
 */
export async function importWebDataset(options: ImportWebDatasetOptions): Promise<ImportWebDatasetResult> {
  if (options.sources.length === 0) throw new DatasetSourceError('no tar files to import');
  const split = await ImageSplitImport.open(options);
  const { existing } = split;
  if (options.classNames && existing && existing.classes.join('\n') !== options.classNames.join('\n'))
    throw new DatasetSourceError(
      `dataset "${options.name}" exists with classes [${existing.classes.join(', ')}]; classNames are [${options.classNames.join(', ')}]`,
    );
  const classNames = options.classNames ?? existing?.classes;
  let bytesRead = 0;
  const report = () => options.onProgress?.({ images: split.imported, skipped: split.skipped, bytesRead });
  let batch: ImageToImport[] = [];
  const flush = async () => {
    await split.add(batch);
    batch = [];
    report();
  };

  for (const source of options.sources) {
    let tarBytes = 0;
    const members = tarMembers(await source.open(), (n) => {
      tarBytes += n;
      bytesRead += n;
    });
    const unknown = (m: Member) => split.skip(`${source.name}:${m.name}`, `unknown extension of ${m.name}`);
    try {
      for await (const sample of samplesOf(members, unknown)) {
        const checked = checkSample(sample, classNames);
        if (checked === undefined) continue;
        if (typeof checked === 'string') {
          split.skip(`${source.name}:${sample.key}`, checked);
          continue;
        }
        batch.push({
          file: `${source.name}:${checked.image.name}`,
          input: checked.image.body,
          label: checked.label,
        });
        if (batch.length >= BATCH) await flush();
      }
    } catch (error) {
      if (!(error instanceof TarReadError)) throw error;
      split.skip(source.name, `unreadable tar, stopped after ${tarBytes} bytes: ${error.message}`);
    }
    await flush();
  }
  const described = `tars ${options.sources.map((s) => s.name).join(', ')}`;
  return split.finish(classList(split.maxLabel, classNames), described);
}
