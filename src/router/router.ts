/**
 * The router's request handling: authenticate, read the body, pick the hosts in the order the request's
 * {@link RoutePlan} says, and try them until one gives an answer worth passing on. A host that is full or
 * draining (`503` with `host_full` or `host_draining`), or that cannot be reached, hands the request to the
 * next one, each host tried once; every other answer goes to the client as it is, streamed, with
 * `x-berth-host` naming the host.
 *
 * A request whose connection failed after it reached a host is tried elsewhere only when its method is
 * idempotent: the host may have acted on a `POST` before it went away, and sending it again could act
 * twice (a message sent twice, two tasks).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BerthError, describeError, isBerthError } from '../errors.js';
import { newRequestId } from '../ids.js';
import { DEFAULT_TENANT, authenticate, type ApiKeys } from '../http/auth.js';
import type { HostEntry } from '../stores/coordination.js';
import type { HostDirectory } from './host-directory.js';
import {
  readBody,
  readPrefix,
  relay,
  upstreamHeaders,
  type UpstreamClient,
  type UpstreamRequest,
} from './proxy.js';
import { rankHosts, routingKey } from '../placement.js';
import { bodyLimitFor, planRoute, prepareCreateBody, type RoutePlan } from './route-plan.js';

/** Options of {@link Router}. */
export interface RouterOptions {
  directory: HostDirectory;
  upstream: UpstreamClient;
  /** Key -> tenant, the hosts' own; empty means no auth and every caller is tenant `default`. */
  apiKeys: ApiKeys;
  /** The largest request body outside `/v1/tasks` (the hosts' `--max-body`). */
  maxBodyBytes: number;
  /** How old the host list behind `/readyz` may be, in ms (the refresh interval). */
  readyMaxAgeMs: number;
  /** Failures of the router or the store (not of the caller). */
  onError?: (err: unknown) => void;
}

/** What the router reads of an answer it may skip (a JSON error envelope is far smaller). */
const PEEK_BYTES = 64 * 1024;

/** Answers that send the request on to the next host. */
const PASSED_ON_CODES: ReadonlySet<string> = new Set(['host_full', 'host_draining']);

const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** How the hosts of a plan are tried. */
interface Attempt {
  hosts: HostEntry[];
  /** Whether a 404 sends the request on (a task or group lives on one host only). */
  skipNotFound: boolean;
}

interface Exchange {
  controller: AbortController;
  /** Whether the answer being relayed is an event stream. */
  streaming: boolean;
}

/** An answer the router read and did not pass on, kept in case no host gives a better one. */
interface HeldAnswer {
  response: IncomingMessage;
  hostId: string;
  head: { head: Buffer; complete: boolean };
}

export class Router {
  private readonly options: RouterOptions;
  private readonly onError: (err: unknown) => void;
  /** Requests in flight: shutdown waits for them, and ends event streams at once. */
  private readonly inFlight = new Map<ServerResponse, Exchange>();

  constructor(options: RouterOptions) {
    this.options = options;
    this.onError = options.onError ?? (() => undefined);
  }

  /** The `node:http` request listener. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    const controller = new AbortController();
    this.inFlight.set(res, { controller, streaming: false });
    // The client went away before the answer ended: stop the host's work on it (an event stream's
    // subscription, a long poll).
    res.on('close', () => {
      this.inFlight.delete(res);
      if (!res.writableFinished) controller.abort();
    });
    this.serve(req, res, controller.signal).catch((err: unknown) => this.fail(res, err));
  };

  /** Requests in flight. */
  get pending(): number {
    return this.inFlight.size;
  }

  /** Ends every event stream being relayed (its client reconnects, with `Last-Event-ID`, elsewhere). */
  endStreams(): void {
    for (const [res, exchange] of this.inFlight) {
      if (!exchange.streaming) continue;
      exchange.controller.abort();
      res.destroy();
    }
  }

  private async serve(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    const method = req.method ?? 'GET';
    const target = req.url ?? '/';
    const query = target.indexOf('?');
    const pathname = query < 0 ? target : target.slice(0, query);
    const plan = planRoute(method, pathname);
    if (plan.kind === 'healthz') return sendJson(res, 200, { status: 'ok' });
    if (plan.kind === 'readyz') return this.readyz(res);
    const tenant = pathname.startsWith('/v1/') ? this.tenantOf(req) : DEFAULT_TENANT;
    if (plan.kind === 'hosts') return this.listHosts(res);

    let body = await this.readRequestBody(req, pathname);
    if (body === null) {
      res.setHeader('connection', 'close');
      const limit = bodyLimitFor(pathname, this.options.maxBodyBytes);
      throw new BerthError('body_too_large', `The request body is over ${limit} bytes`);
    }
    let sessionId: string | undefined;
    if (plan.kind === 'create-session' && body !== undefined) {
      const prepared = prepareCreateBody(body);
      body = prepared.body;
      sessionId = prepared.id;
    }
    const attempt = await this.attemptFor(plan, tenant, sessionId, signal);
    const request: UpstreamRequest = {
      method,
      path: target,
      headers: upstreamHeaders(req.headers, req.socket.remoteAddress, body?.length),
      body,
    };
    await this.forward(res, request, attempt, signal);
  }

  /** The hosts to try, best first; `not_ready` when there are none. */
  private async attemptFor(
    plan: RoutePlan,
    tenant: string,
    sessionId: string | undefined,
    signal: AbortSignal,
  ): Promise<Attempt> {
    const live = await this.options.directory.hosts();
    let hosts: HostEntry[];
    if (plan.kind === 'session') {
      const key = routingKey(tenant, plan.id);
      const holder = await this.options.directory.leaseHolder(key, live, signal);
      const ranked = rankHosts(key, live);
      hosts = holder ? [holder, ...ranked.filter((host) => host.id !== holder.id)] : ranked;
    } else if (plan.kind === 'create-session' && sessionId !== undefined) {
      hosts = rankHosts(routingKey(tenant, sessionId), live);
    } else if (plan.kind === 'owner') {
      // Draining hosts too: they still hold what they created. `hosts()` is ordered by id.
      hosts = [...live];
    } else {
      hosts = leastLoaded(live);
    }
    if (hosts.length === 0) {
      throw new BerthError(
        'not_ready',
        live.length === 0
          ? 'No Berth host is live: the registry in the store lists none'
          : `No Berth host is ready: the ${live.length} live host(s) are draining`,
        { retryAfterSeconds: 1 },
      );
    }
    return { hosts, skipNotFound: plan.kind === 'owner' };
  }

  /** Tries the hosts in turn; relays the first answer worth passing on. */
  private async forward(
    res: ServerResponse,
    request: UpstreamRequest,
    attempt: Attempt,
    signal: AbortSignal,
  ): Promise<void> {
    let held: HeldAnswer | undefined;
    let failure: string | undefined;
    for (const host of attempt.hosts) {
      // The exchange ends when the client goes away, or when the host leaves the list (frozen hosts
      // accept connections and answer nothing; a stream from one ends, and its client reconnects).
      const watch = this.options.directory.watchHost(host.id);
      const exchange = AbortSignal.any([signal, watch.signal]);
      let result = await this.options.upstream.send(host.url, request, exchange);
      // A kept-alive connection the host had just closed: it saw nothing; ask it again on a new one.
      if (!result.ok && result.stale) result = await this.options.upstream.send(host.url, request, exchange);
      if (!result.ok || signal.aborted) watch.stop();
      if (signal.aborted) {
        if (result.ok) result.response.destroy();
        return;
      }
      if (!result.ok) {
        this.options.directory.refreshInBackground();
        failure = `host ${host.id} (${host.url}): ${result.error.message}`;
        if (result.reached && !IDEMPOTENT_METHODS.has(request.method)) {
          throw new BerthError(
            'not_ready',
            `Host ${host.id} went away before it answered ${request.method} ${request.path}; it may have acted on it, so it was not sent to another host`,
            { retryAfterSeconds: 1 },
          );
        }
        continue;
      }
      const { response } = result;
      const status = response.statusCode ?? 502;
      const skippable = status === 503 || (status === 404 && attempt.skipNotFound);
      if (!skippable) {
        discard(held);
        return this.relay(res, response, host.id).finally(() => watch.stop());
      }
      watch.stop();
      const head = await readPrefix(response, PEEK_BYTES).catch(() => undefined);
      if (head === undefined) {
        failure = `host ${host.id} (${host.url}): the answer broke off`;
        continue;
      }
      if (status === 503 && !(head.complete && PASSED_ON_CODES.has(errorCode(head.head) ?? ''))) {
        discard(held);
        return this.relay(res, response, host.id, head);
      }
      // Full, draining, or not the owner: another host may do better. This answer is what the client
      // gets if none does; an earlier one held is dropped.
      discard(held);
      held = { response, hostId: host.id, head };
    }
    if (held) return this.relay(res, held.response, held.hostId, held.head);
    throw new BerthError('not_ready', `No Berth host answered: ${failure ?? 'none was tried'}`, {
      retryAfterSeconds: 1,
    });
  }

  /** {@link relay}, noting an event stream for {@link endStreams}. */
  private relay(
    res: ServerResponse,
    response: IncomingMessage,
    hostId: string,
    head?: { head: Buffer; complete: boolean },
  ): Promise<void> {
    const exchange = this.inFlight.get(res);
    if (exchange)
      exchange.streaming = String(response.headers['content-type']).startsWith('text/event-stream');
    return relay(response, res, hostId, head);
  }

  /** The request's body, undefined when it has none, null when it is over the limit. */
  private async readRequestBody(req: IncomingMessage, pathname: string): Promise<Buffer | undefined | null> {
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return undefined;
    const limit = bodyLimitFor(pathname, this.options.maxBodyBytes);
    if (Number(req.headers['content-length']) > limit) return null;
    return (await readBody(req, limit)) ?? null;
  }

  private tenantOf(req: IncomingMessage): string {
    if (this.options.apiKeys.size === 0) return DEFAULT_TENANT;
    const headers = new Headers();
    const { authorization } = req.headers;
    const apiKey = req.headers['x-api-key'];
    if (authorization !== undefined) headers.set('authorization', authorization);
    if (typeof apiKey === 'string') headers.set('x-api-key', apiKey);
    return authenticate(headers, this.options.apiKeys);
  }

  /** `/readyz`: 200 while the store answers and a ready host is live. */
  private async readyz(res: ServerResponse): Promise<void> {
    let hosts: HostEntry[];
    try {
      hosts = await this.options.directory.fresh(this.options.readyMaxAgeMs);
    } catch (err) {
      throw new BerthError('not_ready', `The store does not answer: ${describeError(err)}`, { cause: err });
    }
    const ready = hosts.filter((host) => host.state === 'ready').length;
    if (ready === 0) {
      throw new BerthError(
        'not_ready',
        hosts.length === 0 ? 'No Berth host is live' : `No Berth host is ready: ${hosts.length} draining`,
      );
    }
    sendJson(res, 200, { status: 'ready', hosts: { live: hosts.length, ready } });
  }

  /** `GET /v1/hosts`: the registry as it is now. */
  private async listHosts(res: ServerResponse): Promise<void> {
    const hosts = await this.options.directory.refresh();
    sendJson(res, 200, {
      data: hosts.map((host) => ({
        id: host.id,
        url: host.url,
        state: host.state,
        capacity: host.capacity,
        slots_free: host.slotsFree,
        last_heartbeat_at: new Date(host.lastHeartbeatAt).toISOString(),
      })),
    });
  }

  /** Answers with the error envelope; a response already under way can only be cut. */
  private fail(res: ServerResponse, err: unknown): void {
    const error = isBerthError(err) ? err : new BerthError('internal', 'Internal error', { cause: err });
    if (error.type === 'api_error' && error.code !== 'aborted') this.onError(error);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (error.retryAfterSeconds !== undefined) res.setHeader('retry-after', String(error.retryAfterSeconds));
    const requestId = newRequestId();
    res.setHeader('request-id', requestId);
    res.setHeader('x-should-retry', String(error.retryable));
    sendJson(res, error.status, { ...error.toJSON(), request_id: requestId });
  }
}

/** Ready hosts, the most free slots first (ties: the larger host, then the id). */
export function leastLoaded(hosts: readonly HostEntry[]): HostEntry[] {
  return hosts
    .filter((host) => host.state === 'ready')
    .sort((a, b) => b.slotsFree - a.slotsFree || b.capacity - a.capacity || (a.id < b.id ? -1 : 1));
}

/** Drops an answer held back; one read whole leaves its connection to be used again. */
function discard(held: HeldAnswer | undefined): void {
  if (held && !held.head.complete) held.response.destroy();
}

/** `error.details.error_code` of a JSON error envelope, if it is one. */
function errorCode(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as {
      error?: { details?: { error_code?: unknown } };
    } | null;
    const code = parsed?.error?.details?.error_code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
