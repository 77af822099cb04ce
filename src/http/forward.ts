/**
 * Multi-host mode in the API: a request for a session reaches the host that runs it, whichever host it
 * arrived at. A plain Kubernetes Service or an ingress that hashes on the session id can therefore front
 * the hosts; `berth router` only saves the extra hop.
 *
 * Where a session belongs (`placement`): the live host holding its lease; with no live lease, its
 * rendezvous choice among the live ready hosts (placement.ts), which is where the router sends it
 * too. A host forwards at most once: a forwarded request (`x-berth-forwarded`) is served where it lands,
 * or answered `409 session_elsewhere` when another host holds the lease, so two hosts with different
 * views of the host list can never bounce a request between them.
 *
 * Forwarding streams the answer through (an SSE stream stays a stream), with the request's method, path,
 * query and headers; `Last-Event-ID` passes unchanged, so a client that reconnects after its session
 * moved resumes where it was.
 */
import type { Context } from 'hono';
import { BerthError } from '../errors.js';
import type { SessionLeases } from '../host/session-leases.js';
import { rankHosts, routingKey } from '../placement.js';
import type { HostEntry } from '../stores/coordination.js';
import { sessionKey, type SessionRef } from '../stores/types.js';

export const FORWARDED_HEADER = 'x-berth-forwarded';
export const HOST_HEADER = 'x-berth-host';

/** Request headers a forward does not pass on (hop-by-hop, or recomputed for the new connection). */
const DROPPED_REQUEST_HEADERS = [
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authorization',
  'proxy-connection',
  'content-length',
];
const DROPPED_RESPONSE_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'content-length'];

/** A forward that got no answer; `resendable` when the target certainly did not act on it. */
export class HostUnreachable extends BerthError {
  constructor(
    readonly hostId: string,
    readonly resendable: boolean,
    cause: unknown,
  ) {
    super('not_ready', `Host ${hostId} did not answer; try again`, { cause, retryAfterSeconds: 1 });
  }
}

/** Whether a fetch failed because nothing listened: the request never reached a host. */
function refused(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  return cause?.code === 'ECONNREFUSED';
}

export class ClusterRouting {
  constructor(private readonly leases: SessionLeases) {}

  get hostId(): string {
    return this.leases.hostId;
  }

  /** Whether the request was forwarded here by another host. */
  static forwarded(c: Context): boolean {
    return c.req.header(FORWARDED_HEADER) !== undefined;
  }

  /**
   * Where a request for an existing session goes: undefined for this host, else the host to forward to.
   * A forwarded request stays here unless a live host holds the lease (the handler then answers 409).
   */
  async placement(ref: SessionRef, forwarded: boolean): Promise<HostEntry | undefined> {
    if (this.leases.holds(ref)) return undefined;
    const hosts = this.leases.hosts;
    const lease = await this.leases.coordination.lease(sessionKey(ref));
    if (lease?.live && lease.hostId !== this.hostId) {
      const holder = hosts.find((h) => h.id === lease.hostId);
      // A holder missing from the list has not beaten since it took the lease: load here, and the
      // claim answers session_elsewhere (409) rather than guessing an address.
      return forwarded ? undefined : holder;
    }
    if (lease?.live || forwarded) return undefined;
    return this.choice(ref, hosts);
  }

  /**
   * The request sent where its session runs (see {@link placement}); undefined when that is here. A
   * host that does not answer is dropped from the list, and a request it certainly did not get goes on
   * to the session's next place.
   */
  async route(c: Context, ref: SessionRef): Promise<Response | undefined> {
    const forwarded = ClusterRouting.forwarded(c);
    const target = await this.placement(ref, forwarded);
    if (!target) return undefined;
    try {
      return await this.forward(c, target);
    } catch (err) {
      if (!(err instanceof HostUnreachable) || !err.resendable) throw err;
      const next = await this.placement(ref, forwarded);
      if (next?.id === target.id) throw err;
      return next ? this.forward(c, next) : undefined;
    }
  }

  /** Where a new session with this id goes: undefined for this host. */
  placeNew(ref: SessionRef): HostEntry | undefined {
    return this.choice(ref, this.leases.hosts);
  }

  private choice(ref: SessionRef, hosts: readonly HostEntry[]): HostEntry | undefined {
    const best = rankHosts(routingKey(ref.tenant, ref.id), hosts)[0];
    return best && best.id !== this.hostId ? best : undefined;
  }

  /**
   * The request, sent to `target` with `body` (the request's own when undefined), and its answer
   * streamed back. A host that cannot be reached is `not_ready` (503): the client retries, by which time
   * the host list has moved on.
   */
  async forward(c: Context, target: Pick<HostEntry, 'id' | 'url'>, body?: string): Promise<Response> {
    const incoming = new URL(c.req.url);
    const url = `${target.url}${incoming.pathname}${incoming.search}`;
    const headers = new Headers(c.req.raw.headers);
    for (const name of DROPPED_REQUEST_HEADERS) headers.delete(name);
    headers.set(FORWARDED_HEADER, this.hostId);
    const method = c.req.method;
    const payload = method === 'GET' || method === 'HEAD' ? undefined : (body ?? (await c.req.text()));
    // A host that stops heartbeating (frozen, cut off) may still accept the connection and never answer:
    // the exchange ends when a heartbeat no longer lists it, and a stream from it ends (its client
    // reconnects with Last-Event-ID and reaches the session where it runs next).
    const gone = new AbortController();
    // A forwarded stream counted against the tenant's `streams` here (stream-quota.ts) ends with its body.
    const releaseStream = (c.var as { releaseStream?: () => void }).releaseStream;
    const stopWatching = this.leases.onHeartbeat((hosts) => {
      if (!hosts.some((h) => h.id === target.id))
        gone.abort(new Error(`host ${target.id} stopped heartbeating`));
    });
    const unwatch = (): void => {
      stopWatching();
      releaseStream?.();
    };
    let answer: Response;
    try {
      answer = await fetch(url, {
        method,
        headers,
        body: payload,
        redirect: 'manual',
        signal: AbortSignal.any([c.req.raw.signal, gone.signal]),
      });
    } catch (err) {
      unwatch();
      // The list may still have a host that died: read it now, so that the retry goes elsewhere.
      await this.leases.refreshHosts().catch(() => undefined);
      throw new HostUnreachable(target.id, refused(err) || method === 'GET' || method === 'HEAD', err);
    }
    const out = new Headers(answer.headers);
    for (const name of DROPPED_RESPONSE_HEADERS) out.delete(name);
    if (!out.has(HOST_HEADER)) out.set(HOST_HEADER, target.id);
    return new Response(untilDone(answer.body, unwatch), { status: answer.status, headers: out });
  }
}

/** `body`, calling `done` once it has ended, failed or been cancelled. */
function untilDone(
  body: ReadableStream<Uint8Array> | null,
  done: () => void,
): ReadableStream<Uint8Array> | null {
  if (!body) {
    done();
    return null;
  }
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done: ended } = await reader.read();
        if (ended) {
          done();
          controller.close();
        } else {
          controller.enqueue(value);
        }
      } catch (err) {
        done();
        controller.error(err);
      }
    },
    async cancel(reason) {
      done();
      await reader.cancel(reason);
    },
  });
}
