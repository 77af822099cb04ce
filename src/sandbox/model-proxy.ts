/**
 * The Messages API proxy that keeps the real model key out of every agent: each subprocess is started
 * with `ANTHROPIC_BASE_URL` pointing here and an opaque token of its own in `ANTHROPIC_API_KEY` (see
 * {@link ModelProxy.grant}); the proxy checks the token, swaps it for the real key and forwards the
 * request to the model endpoint, streaming both ways without buffering (SSE replies included).
 *
 * A token is valid from its grant until its revocation, which the spawner does when its process exits:
 * a token copied out of an agent is worthless once that agent is gone, and an unknown token gets the
 * Messages API's own `authentication_error`, with nothing forwarded.
 *
 * Each grant is made for an owner (a tenant, and the session or task it serves): the replies to its
 * `POST /v1/messages` are metered for that owner as they stream by (model-meter.ts), and once the tenant's
 * spend reaches its budget, or a session's its own, further requests are refused without forwarding
 * (budget-refusal.ts).
 * Requests already on their way are not cut: spend can pass the budget by what they use.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { budgetRefusalBody, sessionBudgetRefusalBody } from './budget-refusal.js';
import { ModelMeter, meterReply, type MeteredUsage } from './model-meter.js';
import { costUsd, type TokenCounts } from './model-prices.js';
import type { Metrics } from '../observe/metrics.js';
import type { SpawnOwner } from './spawn-owner.js';

export interface ModelProxyOptions {
  /** Where requests go: the real Messages API, or the scripted model. */
  upstream: string;
  /** The key the upstream is sent (`x-api-key`). */
  apiKey: string;
  /** Failures no client sees (an upstream that broke off mid-stream, a reply that could not be metered). */
  onError?: ((err: unknown) => void) | undefined;
  /** The tenant's cost budget in USD (`--tenant-limits usd`), Infinity for none. @default none */
  budgetUsd?: ((tenant: string) => number) | undefined;
  /** Where model use is counted. @default a new meter */
  meter?: ModelMeter | undefined;
  /**
   * A session's own budget (the API's `budget`) and what it spent by its stored record, for the owner of a
   * request; undefined when it has none. What this proxy metered for the owner counts when it is more
   * (the turn in flight).
   */
  ownerBudget?: ((owner: SpawnOwner) => { limitUsd: number; spentUsd: number } | undefined) | undefined;
  /** Counts model requests by status, and tokens and cost by tenant. @default not counted */
  metrics?: Metrics | undefined;
}

/** A token for one subprocess: what it is started with, and how its validity ends. */
export interface ModelGrant {
  /** `ANTHROPIC_BASE_URL` for the subprocess. */
  baseUrl: string;
  /** `ANTHROPIC_API_KEY` for the subprocess. */
  token: string;
  /** Ends the token's validity (idempotent). */
  revoke: () => void;
  /** Meters the process's further model use for `owner` (a warm spare, once a session or task claims it). */
  assign: (owner: SpawnOwner) => void;
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
  /** Valid tokens and whose they are. */
  private readonly grants = new Map<string, SpawnOwner>();
  readonly meter: ModelMeter;
  private port = 0;
  private readonly unixServers: http.Server[] = [];
  private closing: Promise<void> | undefined;

  private constructor(private readonly options: ModelProxyOptions) {
    this.upstream = new URL(options.upstream);
    this.meter = options.meter ?? new ModelMeter();
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

  /**
   * Also serves on a Unix socket (what sandboxed agents, which have no network, reach: see `bwrap.ts`).
   * A stale socket file of an earlier host on the same data dir is replaced.
   */
  async listenUnix(socketPath: string): Promise<void> {
    await rm(socketPath, { force: true });
    const server = http.createServer((req, res) => this.forward(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    this.unixServers.push(server);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Tokens currently valid. */
  get liveGrants(): number {
    return this.grants.size;
  }

  /** A fresh token for one subprocess of `owner`'s, whose model use is metered for `owner`. */
  grant(owner: SpawnOwner = { tenant: 'default' }): ModelGrant {
    const token = `sk-berth-proc-${randomBytes(24).toString('base64url')}`;
    this.grants.set(token, { ...owner });
    return {
      baseUrl: this.url,
      token,
      revoke: () => void this.grants.delete(token),
      assign: (next) => {
        if (this.grants.has(token)) this.grants.set(token, { ...next });
      },
    };
  }

  /** The tenant's model use metered by this proxy (see `ModelMeter.usageOf`). */
  usageOf(tenant: string): MeteredUsage {
    return this.meter.usageOf(tenant);
  }

  /** One session's or task's model use metered by this proxy; undefined when none. */
  usageOfOwner(tenant: string, id: string): MeteredUsage | undefined {
    return this.meter.usageOfOwner(tenant, id);
  }

  /** What the tenant has spent, in USD: the seeded spend from before this host started, and what was metered. */
  spentUsd(tenant: string): number {
    return this.meter.spentUsd(tenant);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.grants.clear();
      const servers = [this.server, ...this.unixServers];
      let open = servers.length;
      for (const server of servers) {
        server.close(() => {
          if (--open === 0) resolve();
        });
        server.closeAllConnections();
      }
    });
    return this.closing;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    const token = credentialOf(req);
    const owner = token === undefined ? undefined : this.grants.get(token);
    if (!owner) {
      req.resume();
      const body = JSON.stringify({
        type: 'error',
        error: { type: 'authentication_error', message: 'invalid x-api-key' },
      });
      res.writeHead(401, { 'content-type': 'application/json', 'x-should-retry': 'false' }).end(body);
      return;
    }
    const url = req.url ?? '/';
    // Origin-form only: an absolute or `//host` request line would choose where the real key goes.
    if (!url.startsWith('/') || url.startsWith('//')) {
      return refuse(req, res, 400, 'invalid_request_error', 'the request target must be a path');
    }
    // Normalised (dot segments, %2e) before anything is decided from it, and forwarded as decided.
    const { pathname, search } = new URL(url, 'http://proxy.invalid');
    if (UNMETERED_BILLING.test(pathname)) {
      return refuse(req, res, 403, 'permission_error', `${pathname} is not available to agents`);
    }
    const metered = req.method === 'POST' && /^\/v1\/messages\/?$/.test(pathname);
    const count = (status: string): void => {
      if (metered) this.options.metrics?.modelRequests.inc({ tenant: owner.tenant, status });
    };
    const budget = this.options.budgetUsd?.(owner.tenant) ?? Infinity;
    if (metered && this.meter.spentUsd(owner.tenant) >= budget) {
      count('refused');
      req.resume();
      const body = budgetRefusalBody(owner.tenant, this.meter.spentUsd(owner.tenant), budget);
      res.writeHead(429, { 'content-type': 'application/json', 'x-should-retry': 'false' }).end(body);
      return;
    }
    const own = metered && owner.id !== undefined ? this.options.ownerBudget?.(owner) : undefined;
    if (own && owner.id !== undefined) {
      const spent = Math.max(own.spentUsd, this.meter.usageOfOwner(owner.tenant, owner.id)?.cost_usd ?? 0);
      if (spent >= own.limitUsd) {
        count('refused');
        req.resume();
        const body = sessionBudgetRefusalBody(owner.id, spent, own.limitUsd);
        res.writeHead(429, { 'content-type': 'application/json', 'x-should-retry': 'false' }).end(body);
        return;
      }
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !NOT_FORWARDED.has(name)) headers[name] = value;
    }
    headers['x-api-key'] = this.options.apiKey;
    // A metered reply must come uncompressed: the meter reads its bytes as they pass.
    if (metered) delete headers['accept-encoding'];
    // The upstream's host, always; its own path prefix (a gateway at https://host/anthropic) in front.
    const target = new URL(this.upstream.href);
    target.pathname = `${this.upstream.pathname.replace(/\/$/, '')}${pathname}`;
    target.search = search;
    const client = target.protocol === 'https:' ? https : http;
    const upstream = client.request(target, { method: req.method, headers }, (reply) => {
      const replyHeaders: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(reply.headers)) {
        if (value !== undefined && !NOT_FORWARDED.has(name)) replyHeaders[name] = value;
      }
      res.writeHead(reply.statusCode ?? 502, replyHeaders);
      count(String(reply.statusCode ?? 502));
      // SSE: each chunk goes on as it arrives; nothing is held back (the meter reads a copy).
      res.flushHeaders();
      const done = (err: Error | null): void => {
        if (err && !res.writableEnded) this.options.onError?.(err);
      };
      if (!metered) {
        pipeline(reply, res, done);
        return;
      }
      const meter = meterReply(
        reply.headers,
        (model, tokens, first) => {
          this.meter.add(owner, model, tokens, first);
          if (this.options.metrics) countTokens(this.options.metrics, owner.tenant, model, tokens);
        },
        this.options.onError,
      );
      pipeline(reply, meter, res, done);
    });
    upstream.on('error', (err) => {
      if (!res.headersSent) {
        count('unreachable');
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

/** A reply's tokens by kind, and its cost at list prices, in the tenant's series. */
function countTokens(metrics: Metrics, tenant: string, model: string, tokens: TokenCounts): void {
  const kinds = {
    input: tokens.input_tokens,
    output: tokens.output_tokens,
    cache_read: tokens.cache_read_input_tokens,
    cache_creation: tokens.cache_creation_input_tokens,
  };
  for (const [kind, n] of Object.entries(kinds)) if (n > 0) metrics.modelTokens.inc({ tenant, kind }, n);
  const usd = costUsd(model, tokens);
  if (usd > 0) metrics.modelCost.inc({ tenant }, usd);
}

/** Paths that spend money the meter cannot read (batches, the legacy completions API): refused. */
const UNMETERED_BILLING = /^\/v1\/(messages\/batches|complete)(\/|$)/;

/** Answers with a Messages API error the CLI does not retry; nothing is forwarded. */
function refuse(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  status: number,
  type: string,
  message: string,
): void {
  req.resume();
  const body = JSON.stringify({ type: 'error', error: { type, message } });
  res.writeHead(status, { 'content-type': 'application/json', 'x-should-retry': 'false' }).end(body);
}

/** The credential a client sent: `x-api-key`, or a bearer token. */
function credentialOf(req: http.IncomingMessage): string | undefined {
  const key = req.headers['x-api-key'];
  if (typeof key === 'string' && key !== '') return key;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && auth.startsWith('Bearer ')) return auth.slice('Bearer '.length);
  return undefined;
}
