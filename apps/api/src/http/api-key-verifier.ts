import { createHash, timingSafeEqual } from 'node:crypto';

export type AuthOutcome = { ok: true } | { ok: false; reason: string };

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Checks `Authorization: Bearer <key>`. Keys are compared as SHA-256 digests with timingSafeEqual,
 * so neither a key's content nor its length leaks through response timing, and every key is
 * compared on every request.
 */
export class ApiKeyVerifier {
  private readonly digests: Buffer[];

  constructor(
    keys: readonly string[],
    readonly disabled = false,
  ) {
    this.digests = keys.map(digest);
  }

  verify(authorization: string | string[] | undefined): AuthOutcome {
    if (this.disabled) return { ok: true };
    const header = Array.isArray(authorization) ? authorization[0] : authorization;
    if (!header)
      return { ok: false, reason: 'missing Authorization header: send "Authorization: Bearer <api key>"' };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return { ok: false, reason: 'malformed Authorization header: expected "Bearer <api key>"' };
    const presented = digest(match[1]);
    let accepted = false;
    for (const known of this.digests) accepted = timingSafeEqual(presented, known) || accepted;
    return accepted ? { ok: true } : { ok: false, reason: 'invalid API key' };
  }
}
