/**
 * Every API request as telemetry sees it: a server span (continuing the caller's trace when it sends a
 * W3C `traceparent`), its duration in `berth_http_request_duration_seconds{method,route,status}`, and a
 * debug log line. `route` is the pattern that answered (`/v1/sessions/:id/events`), never the path, so
 * that the label stays bounded; a request no route matched is `unmatched`. A stream's duration is up to
 * its head: what the histogram measures is how long a client waited for an answer.
 */
import { SpanKind, SpanStatusCode, context, propagation } from '@opentelemetry/api';
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { Telemetry } from '../observe/telemetry.js';
import type { Env } from './route-group.js';

const METHODS = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS']);

/** The route pattern that answered: the last matched handler's (middleware is registered as `ALL`). */
export function routeOf(c: Context): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const route = routes[i]!;
    if (route.method !== 'ALL') return route.path;
  }
  return 'unmatched';
}

export function observeRequests(telemetry: Telemetry): MiddlewareHandler<Env> {
  const { metrics, tracer, log } = telemetry;
  /** Counts the answered request; logs it when debug is on (the line is not even built otherwise). */
  const finish = (c: Context, method: string, started: bigint): { route: string; status: number } => {
    const route = routeOf(c);
    const status = c.res.status;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    metrics.httpDuration.observe({ method, route, status: String(status) }, seconds);
    if (log.isLevelEnabled('debug')) {
      log.debug({ method, route, status, ms: seconds * 1000, request_id: c.get('requestId') }, 'request');
    }
    return { route, status };
  };
  return async (c, next) => {
    const started = process.hrtime.bigint();
    // A bounded method: it is a label and a span name, and a client may send any token.
    const method = METHODS.has(c.req.method) ? c.req.method : 'OTHER';
    if (!telemetry.tracing) {
      await next();
      finish(c, method, started);
      return;
    }
    const carrier = Object.fromEntries(c.req.raw.headers);
    const parent = propagation.extract(context.active(), carrier);
    await tracer.startActiveSpan(
      method,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': method, 'url.path': c.req.path } },
      parent,
      async (span) => {
        try {
          await next();
        } finally {
          const { route, status } = finish(c, method, started);
          span.updateName(`${method} ${route}`);
          span.setAttributes({ 'http.route': route, 'http.response.status_code': status });
          if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        }
      },
    );
  };
}
