// Requests to the server: one JSON request and its answer, the server's
// error text for the page, and the retry delays (docs/PROTOCOL.md). URLs are
// relative to the page, so it also works behind a proxy that serves it under
// a path prefix.

// RETRY_MS is the protocol's announced "retry:" (PROTOCOL.md, 2000 ms).
// EventSource applies the server's value itself when it reconnects; it does
// not expose it to scripts, so the page's own retries (a new session after a
// refused stream, a failed POST /sessions) start from this value and back off
// up to RETRY_MAX_MS.
export const RETRY_MS = 2000;
export const RETRY_MAX_MS = 30000;

/** APIError is a failed request: status 0 for a network failure. */
export class APIError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.name = 'APIError';
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * api sends one request and resolves to the decoded JSON answer. Bodies go as
 * application/json; a non-2xx answer rejects with the server's own
 * {"error": ...} text.
 */
export async function api(method, path, body) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new APIError(0, `network error (${err.message})`);
  }
  const text = await res.text().catch(() => '');
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = data && typeof data.error === 'string' ? data.error : `${res.status} ${res.statusText}`;
    throw new APIError(res.status, msg, res.headers.get('Retry-After'));
  }
  return data;
}

/** sessionPath is the path of a session, or of one of its parts (chat, bulk). */
export function sessionPath(session, part) {
  const path = 'sessions/' + encodeURIComponent(session);
  return part ? `${path}/${part}` : path;
}

/** errorText turns an error, an APIError above all, into one line for the page. */
export function errorText(err) {
  if (!(err instanceof APIError)) return String(err && err.message ? err.message : err);
  let s = err.status ? `${err.status}: ${err.message}` : err.message;
  if (err.retryAfter) s += ` (try again in ${err.retryAfter} s)`;
  return s;
}

/** sleep resolves after ms milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
