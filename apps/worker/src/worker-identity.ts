import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** Unique per process and readable in logs: `<host>-<pid>-<random>`, lowercase, key-safe. */
export function newWorkerId(host = hostname(), pid = process.pid): string {
  const safeHost =
    host
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'worker';
  return `${safeHost}-${pid}-${randomBytes(3).toString('hex')}`;
}
