import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { BlobNotFoundError, type BlobStore } from './blob-store';

/** A BlobStore over a local folder: key `a/b.tar` is the file `<rootDir>/a/b.tar`. */
export class FsBlobStore implements BlobStore {
  readonly rootDir: string;

  constructor(rootDir: string) {
    this.rootDir = path.resolve(rootDir);
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return new Uint8Array(await readFile(this.pathOf(key)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(key);
      throw err;
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    // Write beside the target and rename, so a crash never leaves a half-written shard under its real name.
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const key = keyPrefix + e.name;
        if (e.isDirectory()) await walk(path.join(dir, e.name), `${key}/`);
        else if (e.isFile() && !e.name.endsWith('.tmp') && key.startsWith(prefix)) keys.push(key);
      }
    };
    // Only the folder named by the prefix's directory part can hold matching keys.
    const dirPart = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const segments = dirPart.split('/').filter((p) => p !== '');
    await walk(segments.length ? this.pathOf(segments.join('/')) : this.rootDir, dirPart);
    return keys.sort();
  }

  private pathOf(key: string): string {
    const parts = key.split('/');
    if (key === '' || key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
      throw new Error(
        `invalid blob key "${key}": expected a relative path without empty, "." or ".." segments`,
      );
    }
    return path.join(this.rootDir, ...parts);
  }
}
