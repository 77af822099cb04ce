/**
 * Per-tenant limits (`--tenant-limits`): one tenant's load cannot take the host. Two tenants through the
 * API with the real CLI: a tenant at its `live` limit makes room among its own idle sessions or gets
 * `429 quota_exceeded` with nothing stored, while the other tenant is untouched; `streams` counts open
 * event streams until they end.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { isBerthError } from '../src/errors.js';
import { TenantLimitsTable } from '../src/host/tenant-limits.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';

const ALPHA = { authorization: 'Bearer alpha-key-0001' };
const BETA = { authorization: 'Bearer beta-key-0002' };
const KEYS = ['--api-keys', 'alpha:alpha-key-0001,beta:beta-key-0002'];

let model: MockModel | undefined;
afterAll(async () => {
  await model?.close();
});

describe('TenantLimitsTable', () => {
  it('gives a tenant its own limits, then those of *, else none', () => {
    const table = TenantLimitsTable.parse('alpha:live=4,streams=20,sessions=100,usd=0.5; *:live=8,usd=50');
    expect(table.limitsFor('alpha')).toEqual({ live: 4, streams: 20, sessions: 100, usd: 0.5 });
    expect(table.limitsFor('beta')).toEqual({ live: 8, streams: Infinity, sessions: Infinity, usd: 50 });
    expect(TenantLimitsTable.parse('').limitsFor('alpha')).toEqual({
      live: Infinity,
      streams: Infinity,
      sessions: Infinity,
      usd: Infinity,
    });
  });

  it('holds a tenant to its usd budget only once it has its spend', () => {
    const table = TenantLimitsTable.parse('alpha:usd=0.5');
    const spent = new Map([['alpha', 0.5]]);
    expect(() => table.assertBudget('alpha')).not.toThrow();
    const metered = table.withSpend((tenant) => spent.get(tenant) ?? 0);
    expect(() => metered.assertBudget('alpha')).toThrow(
      expect.objectContaining({ code: 'budget_exceeded', message: expect.stringContaining('usd=0.5') }),
    );
    expect(() => metered.assertBudget('beta')).not.toThrow();
    spent.set('alpha', 0.49);
    expect(() => metered.assertBudget('alpha')).not.toThrow();
  });

  it.each([
    ['alpha live=4', /is not TENANT:key=N/],
    ['../x:live=1', /is not TENANT:key=N/],
    ['alpha:live=four', /not a whole number/],
    ['alpha:cpu=2', /"cpu" is not one of live, streams/],
    ['alpha:sessions=1.5', /not a whole number/],
    ['alpha:usd=fifty', /not an amount in USD/],
    ['alpha:usd=0.1234567', /not an amount in USD/],
    ['alpha:live=1;alpha:live=2', /given twice/],
  ])('refuses %s', (spec, message) => {
    let err: unknown;
    try {
      TenantLimitsTable.parse(spec);
    } catch (e) {
      err = e;
    }
    expect(isBerthError(err, 'invalid_config')).toBe(true);
    expect(String(err)).toMatch(message);
  });
});

describe('--tenant-limits', () => {
  it('holds a tenant to its live subprocesses, suspending its own idle ones first, and leaves others alone', async () => {
    model ??= await startMockModel({
      scenarios: [
        { match: { userText: 'stall forever' }, steps: [{ text: 'never', fault: { stallMs: 1e12 } }] },
      ],
    });
    const berth = await TestBerth.start({ model, args: [...KEYS, '--tenant-limits', 'alpha:live=1'] });
    try {
      const busy = await berth.createSession({}, ALPHA);
      const other = await berth.createSession({}, ALPHA);
      await berth.send(busy, [{ type: 'user.message', content: 'stall forever' }], ALPHA);
      await eventually(
        async () =>
          (await berth.api('GET', `/v1/sessions/${busy}`, undefined, ALPHA)).body.status === 'running',
        'the stalled turn',
      );
      // Alpha's one live subprocess is busy: nothing of alpha's can be suspended to make room.
      const before = await berth.history(other, ALPHA);
      const refused = await berth.api(
        'POST',
        `/v1/sessions/${other}/events`,
        { events: [{ type: 'user.message', content: [{ type: 'text', text: 'hello' }] }] },
        ALPHA,
      );
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ details: { error_code: 'quota_exceeded' } });
      expect(refused.body.error.message).toContain('live=1');
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(await berth.history(other, ALPHA)).toEqual(before);

      // Beta is not alpha: its sessions run.
      const betas = await berth.createSession({}, BETA);
      const reply = await berth.api(
        'POST',
        `/v1/sessions/${betas}/events`,
        { events: [{ type: 'user.message', content: [{ type: 'text', text: 'beta says hi' }] }] },
        BETA,
      );
      expect(reply.status).toBe(200);

      // Once alpha's turn is over, its idle session is suspended to make room for its next one.
      await berth.send(busy, [{ type: 'user.interrupt' }], ALPHA);
      await eventually(
        async () =>
          (await berth.api('GET', `/v1/sessions/${busy}`, undefined, ALPHA)).body.berth.status === 'idle',
        'the interrupted turn',
      );
      const [sent] = await berth.send(other, [{ type: 'user.message', content: 'hello again' }], ALPHA);
      await eventually(
        async () =>
          (await berth.history(other, ALPHA)).some(
            (e) => e.seq > sent!.seq && e.type === 'session.status_idle',
          ),
        'the next turn of alpha',
      );
      const after = (await berth.history(other, ALPHA)).filter((e) => e.seq > sent!.seq);
      expect(after.filter((e) => e.type === 'session.error')).toEqual([]);
      // Suspended is Berth's own status; Managed Agents' is idle.
      expect((await berth.api('GET', `/v1/sessions/${busy}`, undefined, ALPHA)).body).toMatchObject({
        status: 'idle',
        berth: { status: 'suspended' },
      });
    } finally {
      await berth.dispose();
    }
  });

  it('counts open event streams per tenant until they end', async () => {
    model ??= await startMockModel();
    const berth = await TestBerth.start({ model, args: [...KEYS, '--tenant-limits', '*:streams=1'] });
    try {
      const id = await berth.createSession({}, ALPHA);
      const first = berth.stream(id, { headers: ALPHA });
      expect(await first.status).toBe(200);
      const second = await fetch(`${berth.url}/v1/sessions/${id}/events/stream`, { headers: ALPHA });
      expect(second.status).toBe(429);
      expect(await second.json()).toMatchObject({ error: { details: { error_code: 'quota_exceeded' } } });
      // A stream that never started (an unknown session) does not count.
      const missing = await fetch(`${berth.url}/v1/sessions/sess_nope/events/stream`, { headers: BETA });
      expect(missing.status).toBe(404);
      const betas = await berth.createSession({}, BETA);
      const beta = berth.stream(betas, { headers: BETA });
      expect(await beta.status).toBe(200);
      first.close();
      await eventually(async () => {
        const again = await fetch(`${berth.url}/v1/sessions/${id}/events/stream`, {
          headers: ALPHA,
          signal: AbortSignal.timeout(2_000),
        });
        const ok = again.status === 200;
        await again.body?.cancel();
        return ok;
      }, 'a new stream once the first has ended');
      beta.close();
    } finally {
      await berth.dispose();
    }
  });
});
