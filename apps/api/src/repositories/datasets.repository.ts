import { Inject, Injectable, Logger } from '@nestjs/common';
import { z } from 'zod';
import { ObjectStore, datasetManifestKey, datasetsPrefix } from '@dinoq/storage';
import { API_OPTIONS, type ApiOptions } from '../api-options';

/**
 * The part of a dataset manifest the API relies on. The full format belongs to the data pipeline;
 * unknown fields pass through untouched.
 */
export const datasetManifestSchema = z.looseObject({
  name: z.string(),
  classes: z.array(z.string()),
  /** Fixed-size datasets; one whose images keep their own sizes has `channels` instead. */
  imageSize: z.looseObject({ width: z.number(), height: z.number(), channels: z.number() }).optional(),
  channels: z.number().optional(),
  splits: z.record(z.string(), z.looseObject({ count: z.number().int().min(0) })),
  createdAt: z.string().optional(),
});

export type DatasetManifest = z.infer<typeof datasetManifestSchema>;

const MANIFEST_KEY = /^datasets\/([^/]+)\/manifest\.json$/;

/** Reads datasets/<name>/manifest.json; a dataset without a manifest does not exist yet. */
@Injectable()
export class Datasets {
  private readonly logger = new Logger('Datasets');
  private readonly store: ObjectStore;

  constructor(@Inject(API_OPTIONS) options: ApiOptions) {
    this.store = options.store;
  }

  async find(name: string): Promise<DatasetManifest | null> {
    const key = datasetManifestKey(name);
    const raw = await this.store.getJson<unknown>(key);
    if (raw === null) return null;
    const parsed = datasetManifestSchema.safeParse(raw);
    if (!parsed.success) {
      const reasons = parsed.error.issues.map(
        (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
      );
      throw new Error(`dataset manifest ${key} is malformed: ${reasons.join('; ')}`);
    }
    return parsed.data;
  }

  async list(): Promise<DatasetManifest[]> {
    const names: string[] = [];
    for await (const key of this.store.list(datasetsPrefix())) {
      const match = MANIFEST_KEY.exec(key);
      if (match) names.push(match[1]);
    }
    const manifests = await Promise.all(
      names.map(async (name) => {
        try {
          return await this.find(name);
        } catch (error) {
          this.logger.warn(`skipping dataset ${name}: ${(error as Error).message}`);
          return null;
        }
      }),
    );
    return manifests.filter((manifest): manifest is DatasetManifest => manifest !== null);
  }
}
