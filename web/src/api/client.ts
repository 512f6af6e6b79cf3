// Every call to the API: bearer token, one refresh on a 401, errors in words.
import { clear, session, store } from './session';
import type { ErrorBody, Problem, Tokens } from './types';

/** An API error, with the server's code and message (or what went wrong on the way). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
    /** Every problem a 422 listed (a report that would not be a valid filing). */
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

async function toError(response: Response): Promise<ApiError> {
  try {
    const body = (await response.json()) as ErrorBody;
    if (body?.error?.message) {
      return new ApiError(response.status, body.error.code, body.error.message, body.error.request_id, body.error.problems ?? []);
    }
  } catch {
    // Not the API's JSON error: a proxy or an outage answered.
  }
  return new ApiError(response.status, 'http_' + response.status, `the server answered ${response.status} ${response.statusText}`.trim());
}

let refreshing: Promise<boolean> | null = null;

/** Exchanges the refresh token for a new pair, once for concurrent callers. */
export function refreshSession(): Promise<boolean> {
  const s = session();
  if (!s) return Promise.resolve(false);
  refreshing ??= (async () => {
    try {
      const response = await fetch('/api/v1/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: s.refresh }),
      });
      if (!response.ok) {
        // Only the session this refresh was for: a sign-in meanwhile stays.
        if (session() === s) clear();
        return false;
      }
      const tokens = (await response.json()) as Tokens;
      // Signed out (or in as someone else) while the refresh was on its way: its tokens
      // must not bring the ended session back.
      if (session() !== s) return false;
      store(tokens, s.email);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** The current Authorization header value. */
export function bearer(): string | undefined {
  const s = session();
  return s ? `Bearer ${s.access}` : undefined;
}

/** One request: the bearer token, one refresh on a 401, a non-2xx answer as an `ApiError`. */
async function request(method: string, path: string, body?: unknown, signal?: AbortSignal, accept = 'application/json'): Promise<Response> {
  const send = () => {
    const headers: Record<string, string> = { accept };
    const auth = bearer();
    if (auth) headers.authorization = auth;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  };
  let response: Response;
  // The session the request went out with: a 401 ends that session only, never one a
  // sign-in started while the request was on its way.
  let sentWith = session();
  try {
    response = await send();
    if (response.status === 401 && session() && (await refreshSession())) {
      sentWith = session();
      response = await send();
    }
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server cannot be reached; check the connection and try again');
  }
  if (response.status === 401 && sentWith !== null && session() === sentWith) clear();
  if (!response.ok) throw await toError(response);
  return response;
}

export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  const response = await request(method, path, body, signal);
  if (response.status === 204) return undefined as T;
  // A 202 may come without a body (a password reset request).
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

/** A GET whose answer is a file (CSV, HTML), as text. */
export async function getText(path: string, accept: string, signal?: AbortSignal): Promise<string> {
  return (await request('GET', path, undefined, signal, accept)).text();
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>('GET', path, undefined, signal);

/** Signs in and keeps the tokens; the error says why not. */
export async function signIn(email: string, password: string): Promise<void> {
  const tokens = await api<Tokens>('POST', '/api/v1/auth/sign-in', { email, password });
  store(tokens, email);
}

export async function signOut(): Promise<void> {
  try {
    await api<void>('POST', '/api/v1/auth/sign-out');
  } finally {
    clear();
  }
}

/** `/api/v1/tenants/{tenant}` plus a path, with the tenant escaped. */
export function tenantPath(tenant: string, rest: string): string {
  return `/api/v1/tenants/${encodeURIComponent(tenant)}${rest}`;
}
