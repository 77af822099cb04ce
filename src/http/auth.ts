/**
 * Tenant API keys. A key maps to one tenant; with no keys configured every caller is tenant `default`
 * (the server then refuses to listen on anything but loopback, see the CLI).
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import { BerthError } from '../errors.js';

export const DEFAULT_TENANT = 'default';

/** API key -> tenant. */
export type ApiKeys = ReadonlyMap<string, string>;

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** The tenant of the request, from `Authorization: Bearer KEY` or `x-api-key: KEY`. */
export function authenticate(headers: Headers, keys: ApiKeys): string {
  if (keys.size === 0) return DEFAULT_TENANT;
  const authorization = headers.get('authorization');
  const bearer = authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  const presented = bearer ?? headers.get('x-api-key') ?? undefined;
  if (!presented) {
    throw new BerthError('unauthorized', 'Missing API key: send Authorization: Bearer KEY');
  }
  // Compare digests in constant time so the comparison leaks nothing about the keys.
  const wanted = digest(presented);
  for (const [key, tenant] of keys) {
    if (timingSafeEqual(digest(key), wanted)) return tenant;
  }
  throw new BerthError('unauthorized', 'Invalid API key');
}
