import { describe, expect, it } from 'vitest';
import { BerthError, formatErrorForLog } from '../errors.js';
import type { SessionHost } from '../host/session-host.js';
import type { Catalog } from '../stores/catalog.js';
import { makeTelemetry } from '../observe/telemetry.js';
import { createApp } from './app.js';

/** The app with one extra route that throws `thrown`; the host is never reached by these requests. */
function appThrowing(thrown: unknown, logged: unknown[]) {
  return createApp({
    host: {} as SessionHost,
    telemetry: makeTelemetry(),
    apiKeys: new Map(),
    maxBodyBytes: 1024,
    heartbeatMs: 1000,
    isReady: () => true,
    onError: (err) => logged.push(err),
    catalog: {} as Catalog,
    network: { confined: false },
    routes: [
      {
        prefix: '/v1/boom',
        register(app) {
          app.get('/v1/boom', () => {
            throw thrown;
          });
        },
      },
    ],
  });
}

describe('errors of the HTTP API', () => {
  it('answers a bug with a bare internal error and logs it with its cause and stack', async () => {
    const logged: unknown[] = [];
    const bug = new TypeError('cannot read properties of undefined (reading "secret-token-123")', {
      cause: new Error('the row was half written'),
    });
    const res = await appThrowing(bug, logged).request('/v1/boom');
    expect(res.status).toBe(500);
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({
      type: 'error',
      error: { type: 'api_error', message: 'Internal error', details: { error_code: 'internal' } },
      request_id: res.headers.get('request-id'),
    });
    expect(res.headers.get('request-id')).toMatch(/^req_/);
    expect(body).not.toContain('secret-token-123');
    expect(logged).toHaveLength(1);
    const [err] = logged;
    expect(err).toBeInstanceOf(BerthError);
    expect((err as BerthError).cause).toBe(bug);
    const line = formatErrorForLog(err);
    expect(line).toContain('caused by: TypeError: cannot read properties of undefined');
    expect(line).toContain('caused by: Error: the row was half written');
    expect(line).toMatch(/TypeError[^\n]*\n\s+at .*app\.test\.ts/);
  });

  it('logs the failures of Berth or a backend, not the mistakes of a client', async () => {
    const logged: unknown[] = [];
    const unavailable = new BerthError('store_unavailable', 'the store is closed', {
      cause: new Error('EPIPE'),
    });
    const res = await appThrowing(unavailable, logged).request('/v1/boom');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      type: 'error',
      error: {
        type: 'api_error',
        message: 'the store is closed',
        details: { error_code: 'store_unavailable' },
      },
    });
    // The store may be back by then: a retry is worth it.
    expect(res.headers.get('x-should-retry')).toBe('true');
    expect(logged).toEqual([unavailable]);

    const quiet: unknown[] = [];
    const bad = await appThrowing(new BerthError('invalid_request', 'limit: bad'), quiet).request('/v1/boom');
    expect(bad.status).toBe(400);
    // The same request gets the same answer: the official client must not retry it.
    expect(bad.headers.get('x-should-retry')).toBe('false');
    expect(quiet).toEqual([]);
  });
});
