import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import {
  SESSION_COOKIE,
  SESSION_REQUEST_HEADER,
  SESSION_TTL_SECONDS,
  checkSessionToken,
  readCookie,
  signSessionToken,
} from './session-token';

export type AuthOutcome = { ok: true } | { ok: false; reason: string };

/** What authentication reads of a request (Express's Request has it). */
export interface AuthRequest {
  method: string;
  headers: IncomingHttpHeaders;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Checks `Authorization: Bearer <key>`, or the dashboard's session cookie. Keys are compared as
 * SHA-256 digests with timingSafeEqual, so neither a key's content nor its length leaks through
 * response timing, and every key is compared on every request.
 */
export class ApiKeyVerifier {
  private readonly digests: Buffer[];

  constructor(
    keys: readonly string[],
    readonly disabled = false,
    private readonly now: () => number = Date.now,
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
    return this.matchingDigest(match[1]) ? { ok: true } : { ok: false, reason: 'invalid API key' };
  }

  /**
   * The Authorization header when there is one, else the session cookie. A cookie-authenticated
   * request that changes something must also carry SESSION_REQUEST_HEADER (see there why).
   */
  verifyRequest(request: AuthRequest): AuthOutcome {
    if (this.disabled || request.headers.authorization !== undefined)
      return this.verify(request.headers.authorization);
    const token = readCookie(request.headers.cookie, SESSION_COOKIE);
    if (token === null) return this.verify(undefined);
    if (!checkSessionToken(token, this.digests, this.nowSeconds()))
      return { ok: false, reason: 'the session has expired or is no longer valid: sign in again' };
    if (!SAFE_METHODS.has(request.method.toUpperCase()) && request.headers[SESSION_REQUEST_HEADER] !== '1') {
      return {
        ok: false,
        reason: `a ${request.method} authenticated by the session cookie must send "${SESSION_REQUEST_HEADER}: 1"`,
      };
    }
    return { ok: true };
  }

  /** A session token for a valid key (null for an invalid one), and when it expires. */
  openSession(key: string): { token: string; maxAgeSeconds: number } | null {
    const matched = this.disabled ? digest(key) : this.matchingDigest(key);
    if (!matched) return null;
    return {
      token: signSessionToken(matched, this.nowSeconds() + SESSION_TTL_SECONDS),
      maxAgeSeconds: SESSION_TTL_SECONDS,
    };
  }

  private nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** The digest of `key` if it is one of the keys; every key is compared whatever the outcome. */
  private matchingDigest(key: string): Buffer | null {
    const presented = digest(key);
    let matched: Buffer | null = null;
    for (const known of this.digests) if (timingSafeEqual(presented, known)) matched = known;
    return matched;
  }
}
