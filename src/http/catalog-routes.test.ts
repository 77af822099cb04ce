import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { BerthError } from '../errors.js';
import type { Catalog } from '../stores/catalog.js';
import { openSqliteStores, type SqliteStores } from '../stores/sqlite/index.js';
import { agentRoutes } from './catalog-routes.js';
import type { Env } from './route-group.js';

let stores: SqliteStores | undefined;
afterEach(async () => {
  await stores?.close();
});

/** The agent routes on an in-memory catalog; `failHeadMoves` head replaces fail as a store outage would. */
function app(failHeadMoves: { count: number }) {
  stores = openSqliteStores(':memory:');
  const real = stores.catalog;
  const catalog: Catalog = {
    create: (e, o) => real.create(e, o),
    get: (r, o) => real.get(r, o),
    list: (t, k, o) => real.list(t, k, o),
    delete: (r, o) => real.delete(r, o),
    replace: (ref, doc, rev, o) => {
      if (ref.kind === 'agent' && failHeadMoves.count-- > 0) {
        return Promise.reject(new BerthError('store_unavailable', 'the store went away'));
      }
      return real.replace(ref, doc, rev, o);
    },
  };
  const hono = new Hono<Env>();
  hono.onError((err, c) => c.json((err as BerthError).toJSON(), (err as BerthError).status as 400));
  hono.use('*', async (c, next) => {
    c.set('tenant', 'acme');
    await next();
  });
  agentRoutes({ catalog, network: { confined: true } }).register(hono);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await hono.request(path, {
      method,
      ...(body !== undefined && {
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
      }),
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  return call;
}

describe('agent versions', () => {
  it('an update that failed before moving the head leaves nothing published, and the next update goes on', async () => {
    const outage = { count: 1 };
    const call = app(outage);
    const agent = (await call('POST', '/v1/agents', { name: 'a', model: 'm' })).body;
    expect((await call('POST', `/v1/agents/${agent.id}`, { system: 'first try' })).status).toBe(503);
    // The version it wrote is not published: not readable, not listed, not pinnable.
    expect((await call('GET', `/v1/agents/${agent.id}?version=2`)).status).toBe(404);
    const versions = (await call('GET', `/v1/agents/${agent.id}/versions`)).body.data as {
      version: number;
    }[];
    expect(versions.map((v) => v.version)).toEqual([1]);
    const next = await call('POST', `/v1/agents/${agent.id}`, { system: 'second try' });
    expect(next.status).toBe(200);
    expect(next.body).toMatchObject({ version: 2, system: 'second try' });
    expect((await call('GET', `/v1/agents/${agent.id}?version=2`)).body.system).toBe('second try');
    expect((await call('POST', `/v1/agents/${agent.id}`, { system: 'third' })).body.version).toBe(3);
  });
});
