import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { BlobNotFoundError, type BlobStore } from './blob-store';

/**
 * A BlobStore over a local folder: key `a/b.tar` is the file `<rootDir>/a/b.tar`. It also has the
 * write operations of libs/storage's object store (`putBytes`, `putBytesIfAbsent`), so a local run
 * keeps its checkpoints and metrics in the bucket's key layout through the same code.
 */
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

  async getStream(key: string): Promise<AsyncIterable<Uint8Array>> {
    try {
      // Opened here, so that a missing file rejects now rather than on the first read.
      return (await open(this.pathOf(key), 'r')).createReadStream();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobNotFoundError(key);
      throw err;
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    // Write beside the target and rename, so a crash never leaves a half-written shard under its real name.
    await this.writeBeside(key, bytes, (tmp, file) => rename(tmp, file));
  }

  /** `put`; a folder keeps no content types. */
  putBytes(key: string, bytes: Uint8Array): Promise<void> {
    return this.put(key, bytes);
  }

  /**
   * Writes only if no file exists under the key; false when one does. The finished temporary file
   * is hard-linked to the key, which fails when the name is taken, so of two writers exactly one wins
   * and nobody ever sees a partial file.
   */
  async putBytesIfAbsent(key: string, bytes: Uint8Array): Promise<boolean> {
    let written = true;
    await this.writeBeside(key, bytes, async (tmp, file) => {
      try {
        await link(tmp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        written = false;
      }
      await rm(tmp, { force: true });
    });
    return written;
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

  /** Writes the bytes to a temporary file next to the key's file, then lets `place` move them there. */
  private async writeBeside(
    key: string,
    bytes: Uint8Array,
    place: (tmp: string, file: string) => Promise<void>,
  ): Promise<void> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, bytes);
      await place(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
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
