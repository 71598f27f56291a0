import { randomBytes } from 'node:crypto';

/** A fresh id that sorts roughly by creation time and is a valid key segment (`run-m3k2x9-4f1a2b`). */
export function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}
