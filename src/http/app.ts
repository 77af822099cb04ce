/**
 * The HTTP API: Managed Agents' (agents, environments, sessions and their events; session-routes.ts,
 * catalog-routes.ts) and Berth's own (tasks, groups, hosts, health, metrics). Every route validates what
 * it is given before it touches anything. Every answer has a `request-id` header, and every failure is
 * Anthropic's error envelope `{type: "error", error: {type, message, details: {error_code}}, request_id}`
 * with the status of its code, and `x-should-retry: false` when sending it again cannot help.
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { BerthError, isBerthError } from '../errors.js';
import type { SessionHost } from '../host/session-host.js';
import { TenantLimitsTable } from '../host/tenant-limits.js';
import type { Catalog } from '../stores/catalog.js';
import { authenticate, type ApiKeys } from './auth.js';
import { agentRoutes, environmentRoutes } from './catalog-routes.js';
import { consoleRoutes } from './console-routes.js';
import { ClusterRouting, HOST_HEADER } from './forward.js';
import type { HostAbilities } from './managed-config.js';
import { scrape } from './metrics.js';
import { observeRequests } from './observe-requests.js';
import type { Telemetry } from '../observe/telemetry.js';
import { openApiDocument } from './openapi.js';
import { sessionRoutes } from './session-routes.js';
import { SessionElsewhere } from '../host/session-leases.js';
import { ID_PATTERN, newRequestId } from '../ids.js';
import { StreamQuota } from './stream-quota.js';
import type { Env, RouteGroup } from './route-group.js';

export type { Env, RouteGroup } from './route-group.js';

export interface AppOptions {
  host: SessionHost;
  /** Key -> tenant; empty means no auth and every caller is tenant `default`. */
  apiKeys: ApiKeys;
  maxBodyBytes: number;
  heartbeatMs: number;
  /** False while the host drains; `/readyz` answers 503. */
  isReady: () => boolean;
  /**
   * Aborted when the server shuts down, after a drain's events are published: event streams send what
   * they have, then end. @default never
   */
  streamsClosing?: AbortSignal | undefined;
  /** Per-tenant limits; the API enforces `streams`. @default none */
  tenantLimits?: TenantLimitsTable | undefined;
  /** More route groups (tasks, groups), registered after auth and the body limit. */
  routes?: ReadonlyArray<RouteGroup>;
  onError?: (err: unknown) => void;
  /** `/metrics` answers without an API key even when keys are configured (`--metrics-public`). */
  metricsPublic?: boolean;
  /** Where requests' spans, durations and log lines go. @default the host's */
  telemetry?: Telemetry;
  /** Multi-host mode: requests for sessions another host runs are forwarded there (forward.ts). */
  cluster?: ClusterRouting | undefined;
  /** Where agents and environments live (`Stores.catalog`). */
  catalog: Catalog;
  /** What this host can enforce of an environment (networking, a memory limit). */
  network: HostAbilities;
}

function errorResponse(c: Context, err: BerthError): Response {
  if (err.retryAfterSeconds !== undefined) c.header('Retry-After', String(Math.ceil(err.retryAfterSeconds)));
  c.header('x-should-retry', String(err.retryable));
  const requestId = (c.get('requestId') as string | undefined) ?? newRequestId();
  c.header('request-id', requestId);
  return c.json({ ...err.toJSON(), request_id: requestId }, err.status as ContentfulStatusCode);
}

export function createApp(options: AppOptions): Hono<Env> {
  const { host, cluster } = options;
  const telemetry = options.telemetry ?? host.telemetry;
  const app = new Hono<Env>();

  app.onError(async (err, c) => {
    // The lease moved between the placement check and the load: one forward, to the holder.
    if (cluster && err instanceof SessionElsewhere && err.url && !ClusterRouting.forwarded(c)) {
      return cluster.forward(c, { id: err.hostId, url: err.url });
    }
    if (isBerthError(err)) {
      // Berth or a backend failed: the log gets the cause, the client only the code and message. A call
      // its own caller stopped (`aborted`) is no failure.
      if (err.type === 'api_error' && err.code !== 'aborted') options.onError?.(err);
      return errorResponse(c, err);
    }
    // A bug. The client learns nothing of it (a stack or a message may quote data); the log gets all.
    const internal = new BerthError('internal', 'Internal error', { cause: err });
    options.onError?.(internal);
    return errorResponse(c, internal);
  });
  app.notFound((c) =>
    errorResponse(c, new BerthError('not_found', `No route for ${c.req.method} ${c.req.path}`)),
  );

  if (cluster) {
    // Which host answered, through any number of forwards: the one that ran the request.
    app.use('*', async (c, next) => {
      await next();
      if (!c.res.headers.has(HOST_HEADER)) c.res.headers.set(HOST_HEADER, cluster.hostId);
    });
  }

  app.use('*', observeRequests(telemetry));
  app.use('*', async (c, next) => {
    const requestId = newRequestId();
    c.set('requestId', requestId);
    await next();
    if (!c.res.headers.has('request-id')) c.res.headers.set('request-id', requestId);
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/openapi.json', (c) => c.json(openApiDocument()));
  // The web console's static files: no key needed for them; its API calls carry one.
  consoleRoutes().register(app);
  app.get('/readyz', (c) => {
    const info = host.info();
    const ready = options.isReady() && info.status === 'ready';
    return c.json({ ...info, status: ready ? 'ready' : 'draining' }, ready ? 200 : 503);
  });

  const access = { apiKeys: options.apiKeys, metricsPublic: options.metricsPublic ?? false };
  app.get('/metrics', (c) => scrape(c, telemetry, access));

  app.use('/v1/*', async (c, next) => {
    c.set('tenant', authenticate(c.req.raw.headers, options.apiKeys));
    await next();
  });
  const streams = new StreamQuota(options.tenantLimits ?? TenantLimitsTable.none());
  app.use('/v1/*', async (c, next) => {
    if (!c.req.path.endsWith('/events/stream')) return next();
    const quota = streams.acquire(c.get('tenant'));
    telemetry.metrics.sseClients.inc();
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      telemetry.metrics.sseClients.dec();
      quota();
    };
    c.set('releaseStream', release);
    if (options.streamsClosing) c.set('streamsClosing', options.streamsClosing);
    await next();
    // A stream that did not start (an unknown id, a bad query) counts no more; one that did, until it ends.
    if (!c.res.headers.get('content-type')?.startsWith('text/event-stream')) release();
  });
  const limit = (maxSize: number): MiddlewareHandler<Env> =>
    bodyLimit({
      maxSize,
      onError: (c) =>
        errorResponse(c, new BerthError('body_too_large', `The request body is over ${maxSize} bytes`)),
    });
  const routes = [
    sessionRoutes({
      host,
      catalog: options.catalog,
      network: options.network,
      heartbeatMs: options.heartbeatMs,
      cluster,
    }),
    agentRoutes({ catalog: options.catalog, network: options.network }),
    environmentRoutes({ catalog: options.catalog, network: options.network }),
    ...(options.routes ?? []),
  ];
  const ownLimits = routes.filter((r) => r.maxBodyBytes !== undefined);
  const general = limit(options.maxBodyBytes);
  for (const r of ownLimits) {
    const own = limit(r.maxBodyBytes!);
    app.use(r.prefix, own);
    app.use(`${r.prefix}/*`, own);
  }
  const hasOwnLimit = (p: string): boolean =>
    ownLimits.some((r) => p === r.prefix || p.startsWith(`${r.prefix}/`));
  const generalLimit: MiddlewareHandler<Env> = (c, next) =>
    hasOwnLimit(c.req.path) ? next() : general(c, next);
  app.use('/v1/*', generalLimit);
  if (cluster) {
    const place: MiddlewareHandler<Env> = async (c, next) => {
      const id = c.req.param('id') ?? '';
      if (!ID_PATTERN.test(id)) return next();
      return (await cluster.route(c, { tenant: c.get('tenant'), id })) ?? next();
    };
    app.use('/v1/sessions/:id', place);
    app.use('/v1/sessions/:id/*', place);
  }

  app.get('/v1/hosts/self', (c) => c.json({ type: 'host', ...host.info() }));

  for (const r of routes) r.register(app);
  return app;
}
