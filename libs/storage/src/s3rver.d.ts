// s3rver ships no type declarations; this covers the part of its API that embedded-s3.ts uses.
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';

  interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory?: string;
    resetOnClose?: boolean;
    configureBuckets?: Array<{ name: string; configs?: Array<string | Buffer> }>;
  }

  class S3rver {
    constructor(options?: S3rverOptions);
    /** The store the controllers use (through `context.store`); replaced in embedded-s3.ts. */
    store: unknown;
    context: { store: unknown };
    /** Koa's middleware stack; the router is the last entry. */
    middleware: unknown[];
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }

  export = S3rver;
}

// Internals that embedded-s3-writes.ts extends: the filesystem store, the error and object models.
declare module 's3rver/lib/stores/filesystem' {
  class FilesystemStore {
    constructor(rootDirectory: string);
    getResourcePath(bucket: string, key?: string, resource?: string): string;
    getMetadata(bucket: string, key: string): Promise<{ etag: string } & Record<string, unknown>>;
  }
  export = FilesystemStore;
}

declare module 's3rver/lib/models/error' {
  class S3Error extends Error {
    constructor(code: string, message: string, detail?: Record<string, string>);
    readonly status: number;
  }
  export = S3Error;
}

declare module 's3rver/lib/models/object' {
  class S3Object {
    static ALLOWED_METADATA: string[];
  }
  export = S3Object;
}

declare module 's3rver/lib/models/account' {
  class AWSAccount {
    createKeyPair(accessKeyId: string, secretAccessKey: string): void;
    static DUMMY_ACCOUNT: AWSAccount;
  }
  export = AWSAccount;
}
