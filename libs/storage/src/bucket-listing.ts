import { ListObjectsCommand, ListObjectsV2Command, type S3Client, type _Object } from '@aws-sdk/client-s3';
import { StorageError } from './errors';
import { describeError, httpStatusOf } from './s3-errors';

/**
 * How listings are paged:
 * - `continuation-token`: ListObjectsV2, the S3 default.
 * - `marker`: ListObjects (v1), resuming after the last key seen. Every S3-compatible server
 *   supports it, and it is the only way to page s3rver when its Node process lacks
 *   `--openssl-legacy-provider`: s3rver encrypts v2 continuation tokens with DES, which
 *   OpenSSL 3 refuses, so any truncated v2 page fails with HTTP 500.
 */
export type ListingMode = 'continuation-token' | 'marker';

export interface ObjectSummary {
  key: string;
  size: number;
  lastModified?: Date;
}

interface Page {
  objects: ObjectSummary[];
  truncated: boolean;
  nextToken?: string;
}

function summarise(contents: _Object[] | undefined): ObjectSummary[] {
  return (contents ?? []).flatMap((object) =>
    object.Key === undefined
      ? []
      : [{ key: object.Key, size: object.Size ?? 0, lastModified: object.LastModified }],
  );
}

export class BucketLister {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    /** Switches from `continuation-token` to `marker` the first time the server cannot page with tokens. */
    public mode: ListingMode,
    /** Keys per request; undefined leaves it to the server (1000 on S3). */
    private readonly pageSize?: number,
  ) {
    if (pageSize !== undefined && (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000)) {
      throw new Error(`listing page size must be an integer in [1, 1000], got ${pageSize}`);
    }
  }

  /** Every object under the prefix, in key order, across all pages. */
  async *objects(prefix: string): AsyncGenerator<ObjectSummary> {
    let lastKey: string | undefined;
    let token: string | undefined;
    for (;;) {
      const page = await this.nextPage(prefix, lastKey, token);
      for (const object of page.objects) {
        lastKey = object.key;
        yield object;
      }
      if (!page.truncated) return;
      if (page.objects.length === 0) {
        throw new StorageError(
          `listing s3://${this.bucket}/${prefix} returned a truncated page without keys`,
        );
      }
      token = page.nextToken;
    }
  }

  private async nextPage(
    prefix: string,
    lastKey: string | undefined,
    token: string | undefined,
  ): Promise<Page> {
    if (this.mode === 'marker') return this.markerPage(prefix, lastKey);
    try {
      return await this.tokenPage(prefix, token);
    } catch (tokenError) {
      const status = httpStatusOf(tokenError);
      if (status === undefined || status < 500) throw this.wrap(tokenError, prefix);
      let page: Page;
      try {
        page = await this.markerPage(prefix, lastKey);
      } catch {
        throw new StorageError(
          `listing s3://${this.bucket}/${prefix} failed with HTTP ${status} (ListObjectsV2), and ListObjects ` +
            'with markers failed too. If the server is s3rver, start its Node process with ' +
            'NODE_OPTIONS=--openssl-legacy-provider (it pages with DES tokens that OpenSSL 3 refuses).',
          { cause: tokenError },
        );
      }
      this.mode = 'marker';
      return page;
    }
  }

  private async tokenPage(prefix: string, token: string | undefined): Promise<Page> {
    const out = await this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix: prefix,
        MaxKeys: this.pageSize,
        ContinuationToken: token,
      }),
    );
    return {
      objects: summarise(out.Contents),
      truncated: out.IsTruncated === true,
      nextToken: out.NextContinuationToken,
    };
  }

  private async markerPage(prefix: string, lastKey: string | undefined): Promise<Page> {
    try {
      const out = await this.client.send(
        new ListObjectsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxKeys: this.pageSize,
          Marker: lastKey,
        }),
      );
      return { objects: summarise(out.Contents), truncated: out.IsTruncated === true };
    } catch (error) {
      throw this.wrap(error, prefix);
    }
  }

  private wrap(error: unknown, prefix: string): StorageError {
    return new StorageError(`listing s3://${this.bucket}/${prefix} failed: ${describeError(error)}`, {
      cause: error,
    });
  }
}
