import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  EMBEDDED_S3_CREDENTIALS,
  EMBEDDED_S3_REGION,
  startEmbeddedS3,
  type EmbeddedS3,
} from '../src/embedded-s3';
import { ObjectStore, type ObjectStoreOptions } from '../src/object-store';
import { createS3Client } from '../src/s3-client';

export const TEST_BUCKET = 'dinoq-test';

export interface TestStore {
  store: ObjectStore;
  client: S3Client;
  server: EmbeddedS3;
  stop(): Promise<void>;
}

export function clientFor(endpoint: string, maxAttempts?: number): S3Client {
  return createS3Client({ endpoint, region: EMBEDDED_S3_REGION, ...EMBEDDED_S3_CREDENTIALS, maxAttempts });
}

/** A real s3rver in this process, with its data in a fresh temporary folder. */
export async function startTestStore(
  storeOptions: Omit<ObjectStoreOptions, 'client' | 'bucket'> = {},
): Promise<TestStore> {
  const directory = await mkdtemp(join(tmpdir(), 'dinoq-s3-'));
  const server = await startEmbeddedS3({ directory, bucket: TEST_BUCKET });
  const client = clientFor(server.endpoint);
  return {
    store: new ObjectStore({ client, bucket: TEST_BUCKET, ...storeOptions }),
    client,
    server,
    stop: async () => {
      client.destroy();
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

export interface ChildS3 {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * s3rver in a separate Node process, so a test can choose whether that process has the
 * OpenSSL legacy provider (which s3rver's DES continuation tokens need) regardless of how
 * the test runner itself was started.
 */
export async function startChildS3(legacyProvider: boolean): Promise<ChildS3> {
  const directory = await mkdtemp(join(tmpdir(), 'dinoq-s3-child-'));
  const script = `
    const S3rver = require(${JSON.stringify(require.resolve('s3rver'))});
    new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: ${JSON.stringify(directory)},
      configureBuckets: [{ name: ${JSON.stringify(TEST_BUCKET)} }] })
      .run().then((info) => console.log(JSON.stringify({ port: info.port })));
  `;
  const nodeOptions = (process.env.NODE_OPTIONS ?? '')
    .split(/\s+/)
    .filter((option) => option && option !== '--openssl-legacy-provider')
    .join(' ');
  const child: ChildProcess = spawn(
    process.execPath,
    [...(legacyProvider ? ['--openssl-legacy-provider'] : []), '-e', script],
    { env: { ...process.env, NODE_OPTIONS: nodeOptions }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`s3rver child exited early with code ${code}`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
