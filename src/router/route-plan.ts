/**
 * Which hosts a request may go to, decided from its method and path alone (and, for a new session, its
 * body). The router keeps no state, so everything it routes by is in the request or the shared store:
 * - a session's routes go to the holder of its lease, else to its hosts in rendezvous order on
 *   (tenant, id) (`session`); a new session is routed the same way on the id in its body, made here when
 *   the client chose none, exactly as a host would make it (`create-session`);
 * - a task's or a group's routes go to the host that created it, which only the hosts know: each is asked
 *   in turn (`owner`);
 * - everything else (creating a task or a group, listing sessions, ...) goes to the ready host with the
 *   most free slots (`least-loaded`);
 * - `/healthz`, `/readyz` and `GET /v1/hosts` are the router's own.
 */
import { newSessionId } from '../ids.js';

export type RoutePlan =
  | { kind: 'healthz' }
  | { kind: 'readyz' }
  | { kind: 'hosts' }
  /** Bound to one session: the lease holder, then rendezvous order. `id` is the decoded path segment. */
  | { kind: 'session'; id: string }
  /** `POST /v1/sessions`: routed on the body's `id`. */
  | { kind: 'create-session' }
  /** Lives on the host that created it: ask the live hosts in id order until one does not answer 404. */
  | { kind: 'owner'; resource: 'task' | 'group' }
  | { kind: 'least-loaded' };

const SESSION_PATH = /^\/v1\/sessions\/([^/]+)(?:\/.*)?$/;
const OWNED_PATH = /^\/v1\/(tasks|groups)\/[^/]+(?:\/.*)?$/;

/** The plan for a request; `pathname` is the path without its query. */
export function planRoute(method: string, pathname: string): RoutePlan {
  const read = method === 'GET' || method === 'HEAD';
  if (read && pathname === '/healthz') return { kind: 'healthz' };
  if (read && pathname === '/readyz') return { kind: 'readyz' };
  if (read && pathname === '/v1/hosts') return { kind: 'hosts' };
  if (method === 'POST' && pathname === '/v1/sessions') return { kind: 'create-session' };
  const session = SESSION_PATH.exec(pathname);
  if (session) return { kind: 'session', id: decodeSegment(session[1]!) };
  const owned = OWNED_PATH.exec(pathname);
  if (owned) return { kind: 'owner', resource: owned[1] === 'tasks' ? 'task' : 'group' };
  return { kind: 'least-loaded' };
}

/** A path segment as the host's router (Hono) decodes it; a malformed escape stays as it is. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * A task's input files come in its JSON body, so `/v1/tasks` takes more than `--max-body`: the hosts'
 * `DEFAULT_TASK_BODY_BYTES` (http/task-routes.ts; a unit test keeps the two equal).
 */
export const TASK_BODY_BYTES = 48 * 1024 * 1024;

/** The largest body the router reads for `pathname`. */
export function bodyLimitFor(pathname: string, maxBodyBytes: number): number {
  return pathname === '/v1/tasks' || pathname.startsWith('/v1/tasks/') ? TASK_BODY_BYTES : maxBodyBytes;
}

/**
 * The body of `POST /v1/sessions` and the id to route it by. A JSON object without `id` gets one, written
 * into the body so that the host creates the session under the id the router routed by (inserted as
 * text: the rest of the body reaches the host byte for byte). A body that is not JSON, not an object, or
 * whose `id` is not a string has no id: the host it goes to answers with its usual 400.
 */
export function prepareCreateBody(body: Buffer): { body: Buffer; id: string | undefined } {
  const text = body.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { body, id: undefined };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { body, id: undefined };
  if ('id' in parsed) {
    const { id } = parsed;
    return { body, id: typeof id === 'string' ? id : undefined };
  }
  const id = newSessionId();
  // A JSON object's text is `{` after optional whitespace; what follows is members or `}`.
  const open = text.indexOf('{');
  const rest = text.slice(open + 1);
  const member = `"id":${JSON.stringify(id)}`;
  const withId = `${text.slice(0, open + 1)}${member}${rest.trim().startsWith('}') ? '' : ','}${rest}`;
  return { body: Buffer.from(withId, 'utf8'), id };
}
