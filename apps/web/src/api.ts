/*
 * Requests to the API, authenticated by the session cookie (the page never holds the key).
 * Requests that change something carry the header the API asks of cookie-authenticated writes.
 */

const SESSION_REQUEST_HEADER = 'x-dinoq-request';

/** An answer other than 2xx, with what the API said: its message and, on a 400, every reason. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reasons: string[],
  ) {
    super(message);
  }
}

const signedOutListeners = new Set<() => void>();

/** Called whenever the API answers 401: the session expired or the key was revoked. */
export function onSignedOut(listener: () => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

async function errorOf(response: Response): Promise<ApiError> {
  const body = (await response.json().catch(() => null)) as {
    message?: unknown;
    reasons?: unknown;
  } | null;
  const message = typeof body?.message === 'string' ? body.message : `HTTP ${response.status}`;
  const reasons = Array.isArray(body?.reasons) ? body.reasons.map(String) : [];
  return new ApiError(response.status, message, reasons);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET') headers[SESSION_REQUEST_HEADER] = '1';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && path !== '/session') for (const listener of signedOutListeners) listener();
    throw error;
  }
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const get = <T>(path: string) => api<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body);

/** Whether the session cookie is still good; signs the page out (see onSignedOut) when it is not. */
export async function checkSession(): Promise<boolean> {
  const state = await get<{ authenticated: boolean }>('/session');
  if (!state.authenticated) for (const listener of signedOutListeners) listener();
  return state.authenticated;
}
