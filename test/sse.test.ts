/**
 * The event stream's housekeeping: heartbeats keep idle connections open through proxies, a client that
 * disconnects ends its subscription (not the session), deleting a session ends its streams, and the
 * health endpoints answer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestBerth } from './helpers/berth.js';

let berth: TestBerth;

beforeAll(async () => {
  berth = await TestBerth.start({ args: ['--heartbeat', '100ms'] });
});

afterAll(async () => {
  await berth?.dispose();
});

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('event streams', () => {
  it('sends heartbeat comments while nothing happens', async () => {
    const id = await berth.createSession();
    const stream = berth.stream(id);
    try {
      expect(await stream.status).toBe(200);
      await until(() => stream.comments.filter((c) => c === 'heartbeat').length >= 2, 'two heartbeats');
      expect(stream.frames).toEqual([]);
    } finally {
      stream.close();
    }
  });

  it('ends the subscription, not the session, when the client goes away', async () => {
    const id = await berth.createSession();
    const session = await berth.server.host.get('default', id);
    // The host's own listener (its log and metrics) is subscribed for the session's whole life.
    const before = session.events.subscriberCount;
    const stream = berth.stream(id);
    await stream.status;
    await until(() => session.events.subscriberCount === before + 1, 'the subscription');
    stream.close();
    await until(() => session.events.subscriberCount === before, 'the unsubscription');
    // The API's `idle` also covers a suspended session or one waiting on a confirmation: Berth's own
    // status says it is the plain idle session it was.
    const view = (await berth.api('GET', `/v1/sessions/${id}`)).body;
    expect(view).toMatchObject({ status: 'idle', berth: { status: 'idle' } });
  });

  it('ends every stream of a session that is deleted, after status_terminated and session.deleted', async () => {
    const id = await berth.createSession();
    const stream = berth.stream(id);
    await stream.status;
    await until(() => stream.comments.length > 0, 'the stream to be open');
    expect((await berth.api('DELETE', `/v1/sessions/${id}`)).status).toBe(200);
    await stream.waitForEnd();
    expect(stream.events.map((e) => e.type)).toEqual(['session.status_terminated', 'session.deleted']);
    // The last word has no SSE id: the session's events are gone, nothing can resume after it.
    expect(stream.frames.at(-1)).toMatchObject({ event: 'session.deleted', id: undefined });
  });

  it('answers health and readiness', async () => {
    expect((await berth.api('GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await berth.api('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready' });
  });
});
