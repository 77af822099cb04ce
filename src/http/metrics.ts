/**
 * `GET /metrics`: the server's figures in Prometheus' text format (observe/metrics.ts), on the API port
 * and, with `--metrics-port`, on a listener of its own. Behind an API key when keys are configured,
 * unless `--metrics-public`, on either port.
 *
 * A key is a tenant's: a scrape with one sees the series labelled with its own `tenant` (model requests,
 * tokens, cost) and none of another tenant's, besides the host-wide series. A scrape without a key (keys
 * not configured, or `--metrics-public`) sees every tenant's: the operator's, on a port only it reaches.
 */
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { BerthError, isBerthError } from '../errors.js';
import type { Telemetry } from '../observe/telemetry.js';
import { authenticate, type ApiKeys } from './auth.js';

export interface MetricsAccess {
  apiKeys: ApiKeys;
  /** Served without a key even when keys are configured. */
  metricsPublic: boolean;
}

/** Answers a scrape (throws `unauthorized` without a valid key when one is needed). */
export async function scrape(c: Context, telemetry: Telemetry, access: MetricsAccess): Promise<Response> {
  const keyed = !access.metricsPublic && access.apiKeys.size > 0;
  const tenant = keyed ? authenticate(c.req.raw.headers, access.apiKeys) : undefined;
  const { text, contentType } = await telemetry.metrics.scrape();
  return c.body(tenant === undefined ? text : onlyTenant(text, tenant), 200, { 'content-type': contentType });
}

/** The scrape without the samples labelled with a tenant other than `tenant` (comment lines are kept). */
export function onlyTenant(text: string, tenant: string): string {
  // Label values are escaped as the text format escapes them (backslash, quote, newline).
  const value = tenant.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
  const own = new RegExp(`(^|,)${escapeRegExp(`tenant="${value}"`)}(,|$)`);
  return text
    .split('\n')
    .filter((line) => {
      if (line.startsWith('#')) return true;
      const labels = /^[^{ ]*\{(.*)\}\s/.exec(line)?.[1];
      if (labels === undefined || !/(^|,)tenant="/.test(labels)) return true;
      return own.test(labels);
    })
    .join('\n');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The `--metrics-port` listener's app: `/metrics` and nothing else. */
export function metricsApp(telemetry: Telemetry, access: MetricsAccess): Hono {
  const app = new Hono();
  app.get('/metrics', (c) => scrape(c, telemetry, access));
  app.onError((err, c) => {
    const error = isBerthError(err) ? err : new BerthError('internal', 'Internal error', { cause: err });
    return c.json(error.toJSON(), error.status as ContentfulStatusCode);
  });
  return app;
}
