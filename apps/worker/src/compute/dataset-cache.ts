import { createHash } from 'node:crypto';
import {
  loadSplit,
  ManifestError,
  parseManifest,
  type DatasetManifest,
  type DecodedSplit,
} from '@dinoq/data';
import { datasetManifestKey, type ObjectStore } from '@dinoq/storage';

export interface CachedSplit {
  manifest: DatasetManifest;
  /** sha256 of the manifest bytes: a re-imported dataset never hits an old entry. */
  manifestSha: string;
  data: DecodedSplit;
}

interface Entry {
  key: string;
  bytes: number;
  value: Promise<CachedSplit>;
}

/**
 * Decoded dataset splits kept between jobs of the compute process, keyed by dataset name,
 * manifest hash, split and limit. Decoding 60k PNGs takes far longer than a training shard on a
 * GPU, so consecutive shards of a run must not pay it again. Least recently used entries go first
 * once the total exceeds the budget (the entry just used always stays).
 */
export class DatasetCache {
  private readonly entries: Entry[] = [];

  constructor(
    private readonly store: ObjectStore,
    private readonly maxBytes: number,
  ) {}

  async manifest(datasetName: string): Promise<{ manifest: DatasetManifest; manifestSha: string }> {
    const key = datasetManifestKey(datasetName);
    const bytes = await this.store.getBytes(key);
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      throw new ManifestError(key, [`not valid JSON (${(error as Error).message})`]);
    }
    return {
      manifest: parseManifest(json, key),
      manifestSha: createHash('sha256').update(bytes).digest('hex'),
    };
  }

  async split(datasetName: string, split: string, limit?: number): Promise<CachedSplit> {
    const { manifest, manifestSha } = await this.manifest(datasetName);
    const key = `${datasetName}@${manifestSha}/${split}/${limit ?? 'all'}`;
    const index = this.entries.findIndex((entry) => entry.key === key);
    if (index >= 0) {
      const [entry] = this.entries.splice(index, 1);
      this.entries.push(entry);
      return entry.value;
    }
    const entry: Entry = {
      key,
      bytes: 0,
      value: loadSplit(this.store, manifest, split, { limit }).then((data) => {
        entry.bytes =
          data.images.byteLength +
          data.labels.byteLength +
          data.offsets.byteLength +
          data.heights.byteLength +
          data.widths.byteLength;
        this.evict();
        return { manifest, manifestSha, data };
      }),
    };
    this.entries.push(entry);
    entry.value.catch(() => this.drop(entry));
    return entry.value;
  }

  get sizeBytes(): number {
    return this.entries.reduce((sum, entry) => sum + entry.bytes, 0);
  }

  get size(): number {
    return this.entries.length;
  }

  private evict(): void {
    while (this.entries.length > 1 && this.sizeBytes > this.maxBytes) this.entries.shift();
  }

  private drop(entry: Entry): void {
    const index = this.entries.indexOf(entry);
    if (index >= 0) this.entries.splice(index, 1);
  }
}
