/**
 * A host's leases (src/host/session-leases.ts) on the real PostgreSQL coordination: which session objects
 * may still run, what a refused write of an older token does, and what a stopping host gives back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionLeases } from '../src/host/session-leases.js';
import type { Coordination } from '../src/stores/coordination.js';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { sessionKey } from '../src/stores/types.js';
import { postgresBackend, type TestStore } from './helpers/backends.js';

const backend = postgresBackend();
let store: TestStore;
let stores: Stores;

beforeAll(async () => {
  store = await backend.create();
  stores = await openStores(store.url);
});
afterAll(async () => {
  await stores?.close();
  await store?.cleanup();
});

function host(id: string, lost: string[] = []): SessionLeases {
  return new SessionLeases({
    coordination: stores.coordination!,
    hostId: id,
    advertiseUrl: `http://127.0.0.1:1/${id}`,
    ttlMs: 60_000,
    announce: () => ({ state: 'ready', capacity: 4, slotsFree: 4 }),
    onLost: (key) => lost.push(key),
  });
}

describe('SessionLeases', () => {
  it('tells a session object made before another host ran the session that it is stale', async () => {
    const a = host('lease-a');
    const b = host('lease-b');
    const ref = { tenant: 't1', id: 'stale-object' };
    await a.claim(ref);
    const object = {};
    a.bindObject(object, ref);
    expect(await a.stillOwns(object, ref)).toBe(true);
    // A suspends it and gives the lease back: A takes it again with the same token, the object is fine.
    await a.release(ref);
    expect(await a.stillOwns(object, ref)).toBe(true);
    // B runs the session in between: A's object is stale even though A can take the lease again.
    await a.release(ref);
    await b.claim(ref);
    await b.release(ref);
    expect(await a.stillOwns(object, ref)).toBe(false);
    // (Finding that out took the lease for A again.) While B holds it, A cannot run the session at all.
    await a.release(ref);
    await b.claim(ref);
    await expect(a.stillOwns(object, ref)).rejects.toMatchObject({
      code: 'session_elsewhere',
      hostId: 'lease-b',
    });
    expect(a.holds(ref)).toBe(false);
  });

  it('says whether a claim took the lease, so that a failed create gives back only what it took', async () => {
    const a = host('lease-c');
    const ref = { tenant: 't1', id: 'taken-or-not' };
    expect(await a.claim(ref)).toMatchObject({ taken: true });
    expect(await a.claim(ref)).toMatchObject({ taken: false });
  });

  it('acts on a refused write only for the token it holds now', async () => {
    const lost: string[] = [];
    const a = host('lease-d', lost);
    const b = host('lease-e');
    const ref = { tenant: 't1', id: 'old-token' };
    const first = await a.claim(ref);
    await a.release(ref);
    await b.claim(ref);
    await b.release(ref);
    const second = await a.claim(ref);
    expect(second.token).toBeGreaterThan(first.token);
    // A spool row of the first token refused after the restart: the session A runs now stays.
    a.lost(sessionKey(ref), first.token);
    expect(lost).toEqual([]);
    expect(a.holds(ref)).toBe(true);
    a.lost(sessionKey(ref), second.token);
    expect(lost).toEqual([sessionKey(ref)]);
    expect(a.holds(ref)).toBe(false);
  });

  it('gives back every lease and leaves the registry when it stops', async () => {
    const a = host('lease-f');
    await a.start();
    const refs = [1, 2, 3].map((n) => ({ tenant: 't2', id: `stop-${n}` }));
    for (const ref of refs) await a.claim(ref);
    expect((await stores.coordination!.hosts()).map((h) => h.id)).toContain('lease-f');
    await a.stop();
    for (const ref of refs) expect((await stores.coordination!.lease(sessionKey(ref)))?.live).toBe(false);
    expect((await stores.coordination!.hosts()).map((h) => h.id)).not.toContain('lease-f');
    await expect(a.claim(refs[0]!)).rejects.toMatchObject({ code: 'not_ready' });
  });

  it('gives a session made again with a deleted id a greater token, so that rows of the old one cannot land', async () => {
    const a = host('lease-g');
    const b = host('lease-g2');
    const ref = { tenant: 't3', id: 'made-again' };
    const first = await a.claim(ref);
    await a.forget(ref);
    // Made again, on another host: a host still holding rows of the old session (token 1) is refused.
    const again = await b.claim(ref);
    expect(again.token).toBeGreaterThan(first.token);
  });

  it('keeps a lease given back while a renewal was on its way given back', async () => {
    // The real store, with the renewal held at the door until the release has landed.
    const real = stores.coordination!;
    let arrived!: () => void;
    const atDoor = new Promise<void>((resolve) => (arrived = resolve));
    let open!: () => void;
    const door = new Promise<void>((resolve) => (open = resolve));
    const coordination = Object.create(real) as Coordination;
    coordination.renew = async (...args) => {
      arrived();
      await door;
      return real.renew(...args);
    };
    const a = new SessionLeases({
      coordination,
      hostId: 'lease-h',
      advertiseUrl: 'http://127.0.0.1:1/lease-h',
      ttlMs: 60_000,
      announce: () => ({ state: 'ready', capacity: 4, slotsFree: 4 }),
      onLost: () => undefined,
    });
    const ref = { tenant: 't4', id: 'renew-race' };
    await a.claim(ref);
    const beat = a.heartbeat();
    await atDoor;
    await a.release(ref);
    expect((await real.lease(sessionKey(ref)))?.live).toBe(false);
    open();
    await beat;
    expect((await real.lease(sessionKey(ref)))?.live).toBe(false);
  });
});
