/**
 * The HTTP API (DESIGN.md, "API"): sessions, their events and event streams, health. Every route
 * validates what it is given before it touches anything, and every failure is `{error: {type, code,
 * message}}` with the status of its code.
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { BerthError, isBerthError } from '../errors.js';
import type { SessionHost } from '../host/session-host.js';
import { TenantLimitsTable } from '../host/tenant-limits.js';
import type { Session, UserEvent } from '../session/session.js';
import type { SessionRecord } from '../stores/types.js';
import { authenticate, type ApiKeys } from './auth.js';
import { parse, readJson, refuseBypassAsRoot, resumeAfter } from './request.js';
import {
  KNOWN_USER_EVENTS,
  createSessionSchema,
  listEventsQuery,
  listSessionsQuery,
  postEventsSchema,
  streamQuery,
  userEventSchema,
} from './schemas.js';
import { streamSessionEvents } from './sse.js';
import { ClusterRouting, HOST_HEADER } from './forward.js';
import { hostMetrics } from './metrics.js';
import { SessionElsewhere } from '../host/session-leases.js';
import { ID_PATTERN, newSessionId } from '../ids.js';
import { StreamQuota } from './stream-quota.js';

export interface AppOptions {
  host: SessionHost;
  /** Key -> tenant; empty means no auth and every caller is tenant `default`. */
  apiKeys: ApiKeys;
  maxBodyBytes: number;
  heartbeatMs: number;
  /** False while the host drains; `/readyz` answers 503. */
  isReady: () => boolean;
  /** Per-tenant limits; the API enforces `streams`. @default none */
  tenantLimits?: TenantLimitsTable | undefined;
  /** More route groups (tasks, groups), registered after auth and the body limit. */
  routes?: ReadonlyArray<RouteGroup>;
  onError?: (err: unknown) => void;
  /** `/metrics` answers without an API key even when keys are configured (`--metrics-public`). */
  metricsPublic?: boolean;
  /** Multi-host mode: requests for sessions another host runs are forwarded there (forward.ts). */
  cluster?: ClusterRouting | undefined;
}

export type Env = {
  Variables: {
    tenant: string;
    /** Set for an event stream: ends its count against the tenant's `streams` limit (see stream-quota.ts). */
    releaseStream?: () => void;
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

function errorResponse(c: Context, err: BerthError): Response {
  if (err.retryAfterSeconds !== undefined) c.header('Retry-After', String(Math.ceil(err.retryAfterSeconds)));
  return c.json(err.toJSON(), err.status as ContentfulStatusCode);
}

/** The public shape of a session. */
export function sessionView(record: SessionRecord): Record<string, unknown> {
  return {
    id: record.id,
    type: 'session',
    status: record.status,
    title: record.title,
    metadata: record.metadata,
    pattern: record.pattern,
    agent: record.agent,
    usage: record.usage,
    turns: record.turns,
    created_at: new Date(record.createdAt).toISOString(),
    updated_at: new Date(record.updatedAt).toISOString(),
  };
}

function parseUserEvents(body: unknown): UserEvent[] {
  const { events } = parse(postEventsSchema, body, 'request body');
  return events.map((raw, index) => {
    if (!KNOWN_USER_EVENTS.has(raw.type)) {
      throw new BerthError(
        'unknown_event_type',
        `events.${index}.type: unknown event type ${JSON.stringify(raw.type)}; clients send ${[...KNOWN_USER_EVENTS].join(', ')}`,
      );
    }
    const event: UserEvent = parse(userEventSchema, raw, `events.${index}`);
    return event;
  });
}

export function createApp(options: AppOptions): Hono<Env> {
  const { host, cluster } = options;
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

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', (c) => {
    const info = host.info();
    const ready = options.isReady() && info.status === 'ready';
    return c.json({ ...info, status: ready ? 'ready' : 'draining' }, ready ? 200 : 503);
  });

  // Made at the first scrape: a host nobody scrapes pays nothing for it (prom-client's default metrics
  // start an event-loop monitor).
  let metrics: ReturnType<typeof hostMetrics> | undefined;
  app.get('/metrics', async (c) => {
    if (!options.metricsPublic) authenticate(c.req.raw.headers, options.apiKeys);
    metrics ??= hostMetrics(() => host.info());
    return c.body(await metrics.metrics(), 200, { 'content-type': metrics.contentType });
  });

  app.use('/v1/*', async (c, next) => {
    c.set('tenant', authenticate(c.req.raw.headers, options.apiKeys));
    await next();
  });
  const streams = new StreamQuota(options.tenantLimits ?? TenantLimitsTable.none());
  app.use('/v1/*', async (c, next) => {
    if (!c.req.path.endsWith('/events/stream')) return next();
    const release = streams.acquire(c.get('tenant'));
    c.set('releaseStream', release);
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
  const routes = options.routes ?? [];
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

  const session = (c: Context<Env>): Promise<Session> => host.get(c.get('tenant'), c.req.param('id') ?? '');

  app.post('/v1/sessions', async (c) => {
    const body = await readJson(c);
    const input = parse(createSessionSchema, body, 'request body');
    refuseBypassAsRoot(input.agent?.permission_mode, 'agent.permission_mode bypassPermissions');
    if (cluster && !ClusterRouting.forwarded(c)) {
      // A new session starts where its id hashes to, so that it does not move at its first idle moment.
      input.id ??= newSessionId();
      const target = cluster.placeNew({ tenant: c.get('tenant'), id: input.id });
      if (target) return cluster.forward(c, target, JSON.stringify({ ...(body as object), id: input.id }));
    }
    const created = await host.create(c.get('tenant'), input);
    return c.json(sessionView(created.snapshot), 201);
  });

  app.get('/v1/sessions', async (c) => {
    const q = parse(listSessionsQuery, c.req.query(), 'query');
    const page = await host.list(c.get('tenant'), { limit: q.limit ?? 20, cursor: q.page });
    return c.json({ data: page.data.map(sessionView), next_page: page.next });
  });

  app.get('/v1/sessions/:id', async (c) => c.json(sessionView((await session(c)).snapshot)));

  app.delete('/v1/sessions/:id', async (c) => {
    const id = (await session(c)).id;
    await host.delete(c.get('tenant'), id);
    return c.json({ id, type: 'session_deleted' });
  });

  app.post('/v1/sessions/:id/events', async (c) => {
    const s = await session(c);
    const events = parseUserEvents(await readJson(c));
    const stored = s.send(events);
    return c.json({ data: stored }, 202);
  });

  app.get('/v1/sessions/:id/events', async (c) => {
    const q = parse(listEventsQuery, c.req.query(), 'query');
    const s = await session(c);
    const limit = q.limit ?? 100;
    const data = await s.events.list(q.after ?? 0, limit);
    const last = data.at(-1);
    return c.json({ data, next_after: data.length === limit && last ? last.seq : null });
  });

  app.get('/v1/sessions/:id/events/stream', async (c) => {
    const q = parse(streamQuery, c.req.query(), 'query');
    const after = resumeAfter(c, q.after);
    const s = await session(c);
    return streamSessionEvents(c, s, {
      after,
      heartbeatMs: options.heartbeatMs,
      onClose: c.get('releaseStream'),
    });
  });

  for (const r of routes) r.register(app);
  return app;
}
