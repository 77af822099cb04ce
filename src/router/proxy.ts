/**
 * HTTP between the router and a host: one request sent upstream over keep-alive connections, its answer
 * relayed to the client as it arrives (an SSE stream chunk by chunk, never buffered), minus the hop-by-hop
 * headers (RFC 9110, 7.6.1) on both legs, plus `x-berth-host` naming the host that answered.
 *
 * A request body is read whole before the first try (bodies are bounded), so that it can be sent again to
 * the next host when one is full or unreachable. An answer is read whole only when the router must look at
 * it (a 503 that may say `host_full`, a 404 of a host that does not hold a task), and then only a little.
 */
import http, {
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { pipeline, type Readable } from 'node:stream';
import { BerthError } from '../errors.js';

/** Headers of one connection, never forwarded (and `host`, `expect`: the router sets its own or none). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'host',
  'expect',
  'content-length',
]);

/**
 * Request headers a client may not send through the router: `x-berth-forwarded` marks a request one host
 * forwarded to another (http/forward.ts), which the host then serves where it lands; from a client it
 * would only stop the host from forwarding a session the router's host list placed wrongly.
 */
const HOST_ONLY_REQUEST_HEADERS = new Set(['x-berth-forwarded']);

/**
 * How long opening a connection to a host may take before the host counts as unreachable. A host whose
 * address drops packets would otherwise hold a request for the kernel's SYN retries (about two minutes).
 */
const CONNECT_TIMEOUT_MS = 5000;

/** A request as sent upstream: the body already read. */
export interface UpstreamRequest {
  method: string;
  /** Path and query, as the client sent them. */
  path: string;
  headers: OutgoingHttpHeaders;
  /** Undefined for a request without a body. */
  body: Buffer | undefined;
}

export type UpstreamResult =
  | { ok: true; response: IncomingMessage }
  | {
      ok: false;
      error: Error;
      /** Whether the connection was open when it failed: the host may have received (and acted on) the request. */
      reached: boolean;
      /**
       * A kept-alive connection that the host had closed as the request went out (the race every client
       * of keep-alive has): the host saw nothing, the same host can be asked again.
       */
      stale: boolean;
    };

/** The request's headers for the host: no hop-by-hop ones, `x-forwarded-for` extended, the body's length. */
export function upstreamHeaders(
  incoming: IncomingHttpHeaders,
  clientAddress: string | undefined,
  bodyLength: number | undefined,
): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const named = connectionTokens(incoming.connection);
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (HOST_ONLY_REQUEST_HEADERS.has(name)) continue;
    headers[name] = value;
  }
  if (clientAddress !== undefined) {
    const before = incoming['x-forwarded-for'];
    headers['x-forwarded-for'] = before ? `${String(before)}, ${clientAddress}` : clientAddress;
  }
  if (bodyLength !== undefined) headers['content-length'] = String(bodyLength);
  return headers;
}

/**
 * The answer's headers for the client: no hop-by-hop ones (Node frames the body itself), plus
 * `x-berth-host`, unless the host set it already (it forwarded the request to the host that answered).
 */
export function downstreamHeaders(incoming: IncomingHttpHeaders, hostId: string): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const named = connectionTokens(incoming.connection);
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || named.has(name)) continue;
    // The length stays: the client needs it for a body Node does not re-frame.
    if (HOP_BY_HOP.has(name) && name !== 'content-length') continue;
    headers[name] = value;
  }
  headers['x-berth-host'] ??= hostId;
  return headers;
}

/** Header names a `Connection:` header lists: hop-by-hop too (RFC 9110, 7.6.1). */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  if (value === undefined) return new Set();
  return new Set(
    String(value)
      .split(',')
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
}

/**
 * The body of `stream`, up to `limit` bytes. Resolves undefined when it is longer: then the stream is
 * paused, its data so far dropped (the caller answers `body_too_large`).
 */
export function readBody(stream: Readable, limit: number): Promise<Buffer | undefined> {
  return readPrefix(stream, limit).then(({ head, complete }) => (complete ? head : undefined));
}

/**
 * Up to a little more than `limit` bytes of `stream`: the whole of it (`complete`), or what arrived before
 * the limit was passed, the stream paused after it, so that the rest can still be piped.
 */
export function readPrefix(stream: Readable, limit: number): Promise<{ head: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      done();
      stream.pause();
      resolve({ head: Buffer.concat(chunks), complete: false });
    };
    const onEnd = (): void => {
      done();
      resolve({ head: Buffer.concat(chunks), complete: true });
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onClose = (): void => {
      done();
      reject(new BerthError('aborted', 'The connection closed before the body ended'));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

/**
 * Sends `response` (whose first bytes, `head`, may have been read already) to the client as it arrives.
 * Resolves when it has been sent or either side went away; a host that fails mid-answer ends the client's
 * connection (a truncated stream, which an SSE client resumes with `Last-Event-ID`).
 */
export function relay(
  response: IncomingMessage,
  res: ServerResponse,
  hostId: string,
  head?: { head: Buffer; complete: boolean },
): Promise<void> {
  res.writeHead(response.statusCode ?? 502, downstreamHeaders(response.headers, hostId));
  if (head?.complete) {
    return new Promise((resolve) => res.end(head.head, () => resolve()));
  }
  // An event stream's headers go out now: the first event may be a while away.
  if (String(response.headers['content-type']).startsWith('text/event-stream')) res.flushHeaders();
  if (head && head.head.length > 0) res.write(head.head);
  return new Promise((resolve) => {
    pipeline(response, res, (err) => {
      if (err) res.destroy();
      resolve();
    });
  });
}

/** Sends requests to hosts over kept-alive connections (one pool per scheme); {@link close} ends them. */
export class UpstreamClient {
  // LIFO: the connection used last is the one least likely to have been closed by the host as idle.
  private readonly httpAgent = new http.Agent({ keepAlive: true, scheduling: 'lifo', noDelay: true });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, scheduling: 'lifo', noDelay: true });
  private readonly bases = new Map<string, URL>();

  /**
   * Sends `request` to the host at `baseUrl` (its `HostEntry.url`). Resolves with the answer's head, or
   * with why there is none; never rejects. `signal` (the client went away) ends the request at any point.
   */
  send(baseUrl: string, request: UpstreamRequest, signal: AbortSignal): Promise<UpstreamResult> {
    let base: URL;
    try {
      base = this.base(baseUrl);
    } catch (err) {
      const error = new BerthError('not_ready', `The host's URL ${JSON.stringify(baseUrl)} is not a URL`, {
        cause: err,
      });
      return Promise.resolve({ ok: false, error, reached: false, stale: false });
    }
    const secure = base.protocol === 'https:';
    return new Promise((resolve) => {
      let reached = false;
      let timer: NodeJS.Timeout | undefined;
      const req = (secure ? https : http).request({
        protocol: base.protocol,
        // URL keeps an IPv6 host in brackets; a socket address has none.
        hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: base.port,
        method: request.method,
        path: `${base.pathname.replace(/\/$/, '')}${request.path}`,
        headers: request.headers,
        agent: secure ? this.httpsAgent : this.httpAgent,
        signal,
      });
      req.on('socket', (socket: Socket) => {
        if (!socket.connecting) {
          reached = true;
          return;
        }
        timer = setTimeout(() => {
          req.destroy(
            new BerthError('not_ready', `No connection to ${baseUrl} within ${CONNECT_TIMEOUT_MS} ms`),
          );
        }, CONNECT_TIMEOUT_MS);
        socket.once(secure ? 'secureConnect' : 'connect', () => {
          clearTimeout(timer);
          reached = true;
        });
      });
      req.on('response', (response) => {
        clearTimeout(timer);
        resolve({ ok: true, response });
      });
      // Stays installed after the answer: a client that goes away mid-stream aborts the request, and the
      // error it raises then must not go unheard.
      req.on('error', (error) => {
        clearTimeout(timer);
        const code = (error as NodeJS.ErrnoException).code;
        const stale = req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE');
        resolve({ ok: false, error, reached: reached && !stale, stale });
      });
      req.end(request.body);
    });
  }

  /** Closes every kept-alive connection; idempotent. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private base(url: string): URL {
    let parsed = this.bases.get(url);
    if (!parsed) {
      parsed = new URL(url);
      // Hosts come and go with new URLs; the cache only saves parsing the live ones again.
      if (this.bases.size >= 1024) this.bases.clear();
      this.bases.set(url, parsed);
    }
    return parsed;
  }
}
