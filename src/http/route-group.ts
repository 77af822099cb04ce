/** What every route of the API shares: the request's variables, and how a set of routes is added. */
import type { Hono } from 'hono';

export type Env = {
  Variables: {
    tenant: string;
    requestId: string;
    /** Set for an event stream: ends its count against the tenant's `streams` limit (see stream-quota.ts). */
    releaseStream?: () => void;
    /** Aborted when the server shuts down: event streams send what they have, then end (see sse.ts). */
    streamsClosing?: AbortSignal;
  };
};

/**
 * A set of routes under `/v1/...`, with its own body limit when it needs a larger one than `--max-body`
 * (ephemeral tasks carry input files).
 */
export interface RouteGroup {
  /** The path prefix the routes live under, e.g. `/v1/tasks`. */
  prefix: string;
  /** Body limit for this prefix; `--max-body` when undefined. */
  maxBodyBytes?: number;
  register(app: Hono<Env>): void;
}
