/**
 * The Messages API proxy that keeps the real model key out of every agent: each subprocess is started
 * with `ANTHROPIC_BASE_URL` pointing here and an opaque token of its own in `ANTHROPIC_API_KEY` (see
 * {@link ModelProxy.grant}); the proxy checks the token, swaps it for the real key and forwards the
 * request to the model endpoint, streaming both ways without buffering (SSE replies included).
 *
 * A token is valid from its grant until its revocation, which the spawner does when its process exits:
 * a token copied out of an agent is worthless once that agent is gone, and an unknown token gets the
 * Messages API's own `authentication_error`, with nothing forwarded.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';

export interface ModelProxyOptions {
  /** Where requests go: the real Messages API, or the scripted model. */
  upstream: string;
  /** The key the upstream is sent (`x-api-key`). */
  apiKey: string;
  /** Failures no client sees (an upstream that broke off mid-stream). */
  onError?: ((err: unknown) => void) | undefined;
}

/** A token for one subprocess: what it is started with, and how its validity ends. */
export interface ModelGrant {
  /** `ANTHROPIC_BASE_URL` for the subprocess. */
  baseUrl: string;
  /** `ANTHROPIC_API_KEY` for the subprocess. */
  token: string;
  /** Ends the token's validity (idempotent). */
  revoke: () => void;
}

/** Headers of one hop, not of the message (RFC 9110 §7.6.1), dropped both ways; and the credentials swapped here. */
const NOT_FORWARDED = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'upgrade',
  'x-api-key',
  'authorization',
]);

export class ModelProxy {
  private readonly server: http.Server;
  private readonly upstream: URL;
  private readonly grants = new Set<string>();
  private port = 0;
  private closing: Promise<void> | undefined;

  private constructor(private readonly options: ModelProxyOptions) {
    this.upstream = new URL(options.upstream);
    this.server = http.createServer((req, res) => this.forward(req, res));
  }

  /** Starts the proxy on a loopback port. */
  static async start(options: ModelProxyOptions): Promise<ModelProxy> {
    const proxy = new ModelProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Tokens currently valid. */
  get liveGrants(): number {
    return this.grants.size;
  }

  /** A fresh token for one subprocess. */
  grant(): ModelGrant {
    const token = `sk-berth-proc-${randomBytes(24).toString('base64url')}`;
    this.grants.add(token);
    return { baseUrl: this.url, token, revoke: () => void this.grants.delete(token) };
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.grants.clear();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const token = credentialOf(req);
    if (!token || !this.grants.has(token)) {
      req.resume();
      const body = JSON.stringify({
        type: 'error',
        error: { type: 'authentication_error', message: 'invalid x-api-key' },
      });
      res.writeHead(401, { 'content-type': 'application/json', 'x-should-retry': 'false' }).end(body);
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !NOT_FORWARDED.has(name)) headers[name] = value;
    }
    headers['x-api-key'] = this.options.apiKey;
    const target = new URL(req.url ?? '/', this.upstream);
    // The upstream's own path prefix (a gateway at https://host/anthropic) stays in front.
    target.pathname = `${this.upstream.pathname.replace(/\/$/, '')}${new URL(req.url ?? '/', 'http://x').pathname}`;
    const client = target.protocol === 'https:' ? https : http;
    const upstream = client.request(target, { method: req.method, headers }, (reply) => {
      const replyHeaders: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(reply.headers)) {
        if (value !== undefined && !NOT_FORWARDED.has(name)) replyHeaders[name] = value;
      }
      res.writeHead(reply.statusCode ?? 502, replyHeaders);
      // SSE: each chunk goes on as it arrives; nothing is held back.
      res.flushHeaders();
      pipeline(reply, res, (err) => {
        if (err && !res.writableEnded) this.options.onError?.(err);
      });
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) {
        const body = JSON.stringify({
          type: 'error',
          error: { type: 'api_error', message: `the model endpoint could not be reached: ${err.message}` },
        });
        res.writeHead(502, { 'content-type': 'application/json' }).end(body);
      } else {
        res.destroy(err);
      }
    });
    // A client that goes away ends the upstream request too (a stalled stream is not left open).
    res.on('close', () => upstream.destroy());
    pipeline(req, upstream, () => undefined);
  }
}

/** The credential a client sent: `x-api-key`, or a bearer token. */
function credentialOf(req: http.IncomingMessage): string | undefined {
  const key = req.headers['x-api-key'];
  if (typeof key === 'string' && key !== '') return key;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice('Bearer '.length);
  return undefined;
}
