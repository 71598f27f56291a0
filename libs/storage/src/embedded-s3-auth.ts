import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { SignatureV4 } from '@smithy/signature-v4';
import S3Error = require('s3rver/lib/models/error');

/*
 * s3rver lets anonymous requests through and, for Signature Version 4 (what every current SDK
 * sends), checks only that the access key id exists, never the signature. This middleware makes
 * the embedded server refuse both: every request must be signed with its key pair, in the
 * Authorization header or as a presigned URL that has not expired. The signature is recomputed
 * with the AWS SDK's own signer over exactly the headers the client says it signed.
 */

export interface EmbeddedS3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

const toBuffer = (data: SourceData): Buffer =>
  typeof data === 'string'
    ? Buffer.from(data, 'utf8')
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** The signer's hash interface over node:crypto (HMAC when given a key). */
class NodeSha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

interface SignedRequestParts {
  accessKeyId: string;
  region: string;
  signingDate: Date;
  signedHeaders: string[];
  signature: string;
  /** Presigned URLs only. */
  expiresSeconds?: number;
}

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;
const CREDENTIAL = /^([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request$/;

function accessDenied(message: string): Error {
  return new S3Error('AccessDenied', message);
}

/** 20261206T024800Z → a Date. */
function parseAmzDate(value: string | undefined): Date {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value ?? '');
  if (!match) throw accessDenied('missing or malformed X-Amz-Date');
  const [, y, mo, d, h, mi, s] = match.map(Number);
  return new Date(Date.UTC(y, mo - 1, d, h, mi, s));
}

function fromHeader(authorization: string, headers: IncomingHttpHeaders): SignedRequestParts {
  const match = AUTHORIZATION.exec(authorization);
  if (!match) throw accessDenied('only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted');
  const [, accessKeyId, , region, signedHeaders, signature] = match;
  const date = headers['x-amz-date'];
  return {
    accessKeyId,
    region,
    signingDate: parseAmzDate(Array.isArray(date) ? date[0] : date),
    signedHeaders: signedHeaders.split(';'),
    signature,
  };
}

function fromQuery(query: URLSearchParams): SignedRequestParts {
  if (query.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') {
    throw accessDenied('only AWS Signature Version 4 presigned URLs are accepted');
  }
  const credential = CREDENTIAL.exec(query.get('X-Amz-Credential') ?? '');
  const expires = Number(query.get('X-Amz-Expires'));
  const signature = query.get('X-Amz-Signature') ?? '';
  if (!credential || !Number.isInteger(expires) || expires < 1 || !/^[0-9a-f]{64}$/.test(signature)) {
    throw accessDenied('malformed presigned URL');
  }
  return {
    accessKeyId: credential[1],
    region: credential[3],
    signingDate: parseAmzDate(query.get('X-Amz-Date') ?? undefined),
    signedHeaders: (query.get('X-Amz-SignedHeaders') ?? 'host').split(';'),
    signature,
    expiresSeconds: expires,
  };
}

function queryObject(
  query: URLSearchParams,
  without: (name: string) => boolean,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of query) {
    if (without(name)) continue;
    const previous = out[name];
    out[name] =
      previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
  }
  return out;
}

function signedHeaderValues(headers: IncomingHttpHeaders, names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const value = headers[name];
    if (value === undefined) throw accessDenied(`signed header ${name} is missing`);
    out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

const PRESIGN_PARAMETERS = new Set([
  'X-Amz-Algorithm',
  'X-Amz-Credential',
  'X-Amz-Date',
  'X-Amz-Expires',
  'X-Amz-SignedHeaders',
  'X-Amz-Signature',
  'X-Amz-Content-Sha256',
]);

const sameSignature = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

interface AuthContext {
  method: string;
  req: { url?: string; headers: IncomingHttpHeaders };
}

/** Recomputes the request's signature with the server's key pair; throws AccessDenied unless it matches. */
export async function verifySignature(ctx: AuthContext, credentials: EmbeddedS3Credentials): Promise<void> {
  const [path, rawQuery = ''] = (ctx.req.url ?? '/').split('?', 2);
  const query = new URLSearchParams(rawQuery);
  const authorization = ctx.req.headers.authorization;
  const presigned = query.has('X-Amz-Signature');
  if (!authorization && !presigned) throw accessDenied('anonymous requests are refused: sign them');
  const parts = authorization ? fromHeader(authorization, ctx.req.headers) : fromQuery(query);
  if (parts.accessKeyId !== credentials.accessKeyId) {
    throw new S3Error(
      'InvalidAccessKeyId',
      'The AWS Access Key Id you provided does not exist in our records.',
    );
  }
  const signer = new SignatureV4({
    credentials,
    region: parts.region,
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const request = {
    method: ctx.method,
    protocol: 'http:',
    hostname: String(ctx.req.headers.host ?? ''),
    path,
    headers: signedHeaderValues(ctx.req.headers, parts.signedHeaders),
  };
  const signableHeaders = new Set(parts.signedHeaders);
  let expected: string;
  if (parts.expiresSeconds === undefined) {
    const signed = await signer.sign(
      { ...request, query: queryObject(query, () => false) },
      { signingDate: parts.signingDate, signableHeaders },
    );
    expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization))?.[1] ?? '';
  } else {
    if (parts.signingDate.getTime() + parts.expiresSeconds * 1000 < Date.now()) {
      throw accessDenied('Request has expired');
    }
    // The signer adds these parameters itself; the payload-hash parameter goes back to the header
    // the presigner took it from, and is hoisted into the query again as it was then.
    const unsigned = queryObject(query, (name) => PRESIGN_PARAMETERS.has(name));
    const payloadHash = query.get('X-Amz-Content-Sha256');
    const headers = payloadHash
      ? { ...request.headers, 'X-Amz-Content-Sha256': payloadHash }
      : request.headers;
    const signed = await signer.presign(
      { ...request, headers, query: unsigned },
      { signingDate: parts.signingDate, expiresIn: parts.expiresSeconds, signableHeaders },
    );
    expected = String(signed.query?.['X-Amz-Signature'] ?? '');
  }
  if (!sameSignature(expected, parts.signature)) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided.',
    );
  }
}

/** Koa middleware refusing every request that is not signed with `credentials`. */
export function signedRequestsOnly(credentials: EmbeddedS3Credentials) {
  return async function signedOnly(ctx: AuthContext, next: () => Promise<void>): Promise<void> {
    await verifySignature(ctx, credentials);
    await next();
  };
}
