import { randomBytes } from 'node:crypto';

/** Session ids and tenant names: safe as a path segment, a store key and a URL segment. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** A generated session id: 15 random bytes (120 bits, as unguessable as a UUID), inside ID_PATTERN. */
export function newSessionId(): string {
  return `sess_${randomBytes(15).toString('base64url')}`;
}

/** A request's id, the `request-id` header of every answer and `request_id` of an error. */
export function newRequestId(): string {
  return `req_${randomBytes(15).toString('base64url')}`;
}

/** A stored event's id (Managed Agents' `sevt_` prefix). */
export function newEventId(): string {
  return `sevt_${randomBytes(12).toString('base64url')}`;
}

/** An agent's id. */
export function newAgentId(): string {
  return `agent_${randomBytes(15).toString('base64url')}`;
}

/** An environment's id. */
export function newEnvironmentId(): string {
  return `env_${randomBytes(15).toString('base64url')}`;
}
