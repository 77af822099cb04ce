/**
 * Calls to Berth's API from the console. The API key lives in this tab's sessionStorage (gone when the
 * tab closes) and goes with every call as `x-api-key`; a server without keys takes an empty one.
 */

const KEY_ITEM = 'berth.console.key';

/** A failed call, with the API's own message and stable code (`error.details.error_code`). */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setKey(key) {
  sessionStorage.setItem(KEY_ITEM, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

/** Headers of an API call: the key, when there is one. */
export function authHeaders() {
  const key = getKey();
  return key ? { 'x-api-key': key } : {};
}

/** An ApiError from a failed response: the error envelope's message, or the status line. */
export async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`.trim();
  let code;
  try {
    const body = await res.json();
    if (body?.error?.message) message = String(body.error.message);
    code = body?.error?.details?.error_code;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, message, code);
}

/**
 * One API call: JSON in, JSON out. Throws an {@link ApiError} for a failure, with the API's message.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{signal?: AbortSignal}} [options]
 */
export async function api(method, path, body, options = {}) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw new ApiError(0, `Cannot reach the server: ${err?.message ?? err}`, 'network');
  }
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

/** A path segment, escaped. */
export function seg(value) {
  return encodeURIComponent(String(value));
}

/** Fetches a file with the key and hands it to the browser as a download named `name`. */
export async function download(path, name) {
  const res = await fetch(path, { headers: authHeaders() });
  if (!res.ok) throw await errorOf(res);
  const url = URL.createObjectURL(await res.blob());
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
  } finally {
    // The click has started the download; the URL is not needed after this task.
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
