import { randomBytes } from 'node:crypto';

/** Session ids and tenant names: safe as a path segment, a store key and a URL segment. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** A generated session id: 15 random bytes (120 bits, as unguessable as a UUID), inside ID_PATTERN. */
export function newSessionId(): string {
  return `sess_${randomBytes(15).toString('base64url')}`;
}
