import { createHmac, timingSafeEqual } from 'node:crypto';

/*
 * The dashboard's sign-in session: a cookie that stands for an API key without holding it.
 * The token is `<expiry in Unix seconds>.<HMAC-SHA256 of the expiry under the key's digest>`, so
 * any API replica that knows the key can check it (nothing is stored), removing a key from
 * DINOQ_API_KEYS ends its sessions, and a stolen cookie expires on its own.
 */

export const SESSION_COOKIE = 'dinoq_session';
/** Browsers are signed out after this long, whatever they do. */
export const SESSION_TTL_SECONDS = 8 * 3600;
/**
 * A request authenticated by the cookie that changes something must carry this header. Browsers
 * only attach custom headers to cross-origin requests after a CORS preflight this API never
 * grants, so a page elsewhere on the same site (another port of the host) cannot forge one.
 */
export const SESSION_REQUEST_HEADER = 'x-dinoq-request';

const TOKEN_PATTERN = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/;

function mac(keyDigest: Buffer, expiresAt: number): Buffer {
  return createHmac('sha256', keyDigest).update(`dinoq-session:v1:${expiresAt}`).digest();
}

export function signSessionToken(keyDigest: Buffer, expiresAt: number): string {
  return `${expiresAt}.${mac(keyDigest, expiresAt).toString('base64url')}`;
}

/** True when the token was signed under one of the digests and has not expired at `nowSeconds`. */
export function checkSessionToken(token: string, keyDigests: readonly Buffer[], nowSeconds: number): boolean {
  const match = TOKEN_PATTERN.exec(token);
  if (!match) return false;
  const expiresAt = Number(match[1]);
  const presented = Buffer.from(match[2], 'base64url');
  let accepted = false;
  // Every digest is compared, so timing does not tell which key (or whether any) matched.
  for (const digest of keyDigests) accepted = timingSafeEqual(presented, mac(digest, expiresAt)) || accepted;
  return accepted && expiresAt > nowSeconds;
}

/** The value of one cookie in a Cookie header, or null. */
export function readCookie(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const separator = part.indexOf('=');
    if (separator > 0 && part.slice(0, separator).trim() === name) return part.slice(separator + 1).trim();
  }
  return null;
}

/** The Set-Cookie value: HttpOnly (no script reads it), SameSite=Strict, Secure over HTTPS. */
export function sessionCookie(token: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${SESSION_COOKIE}=${token}`,
    'Path=/',
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}
