/**
 * The contract of a store bundle that can run many hosts ({@link Stores.coordination}, see
 * `stores/coordination.ts`), as conformance cases: the host registry, session leases with their fencing
 * tokens, the superseded writes, and fencing itself. That is why a case gets a whole {@link Stores}: a
 * fenced write goes through the bundle's registry, event log and transcript store and is checked against
 * the bundle's leases. Run them with `runConformance`, or `runCoordinationConformance` under vitest.
 *
 * Expiry is by the store's clock, so the cases that need a lease or a host to expire use a short ttl
 * ({@link SHORT_TTL_MS}) and wait well past it ({@link EXPIRY_WAIT_MS}); bounds on times are generous, since
 * the store's clock is not the test's.
 */
import assert from 'node:assert/strict';
import type { SessionKey, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { isBerthError } from '../../errors.js';
import type { Coordination, FencedSessionStore, SupersededWrite } from '../../stores/coordination.js';
import type { Fence, Stores } from '../../stores/types.js';
import {
  assertAtLeast,
  assertBetween,
  assertMatches,
  assertRejectsWithCode,
  assertSame,
  firedSignal,
} from './assertions.js';
import { event } from './event-log-cases.js';
import { record } from './registry-cases.js';
import type { ConformanceCase } from './runner.js';

/** A ttl that a case waits out: long enough that a slow store answers well within it. */
const SHORT_TTL_MS = 300;
/** How long a case waits for a {@link SHORT_TTL_MS} lease or heartbeat to expire. */
const EXPIRY_WAIT_MS = 800;
/** A ttl no case outlives. */
const LONG_TTL_MS = 60_000;
/** Hosts racing for one lease in the concurrency cases. */
const RACERS = 8;

const HOSTS = 'hosts';
const LEASES = 'leases';
const SUPERSEDED = 'superseded writes';
const FENCING = 'fencing';
const CONCURRENCY = 'concurrency';

/** What a case body gets: the bundle's coordination, the bundle, and every bundle of a `shared` case. */
type CaseBody = (coord: Coordination, stores: Stores, all: readonly Stores[]) => Promise<void>;

function coordinationCase(
  group: string,
  name: string,
  run: CaseBody,
  flags: Pick<ConformanceCase<Stores>, 'shared'> = {},
): ConformanceCase<Stores> {
  return {
    suite: 'Coordination',
    group,
    name,
    ...flags,
    run: ({ instance, instances }) => run(coordinationOf(instance), instance, instances),
  };
}

/** The bundle's coordination; a bundle without one cannot run these cases. */
function coordinationOf(stores: Stores): Coordination {
  if (!stores.coordination) {
    throw new Error('the factory returned stores without coordination: this suite needs Stores.coordination');
  }
  return stores.coordination;
}

/** The bundle's transcript store, whose `append` takes a fence when the bundle has coordination. */
function transcriptsOf(stores: Stores): FencedSessionStore {
  return stores.transcriptStore;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The session every fencing case writes to, and its lease key. */
const S1 = { tenant: 'acme', id: 's1' };
const LEASE = 'acme/s1';
const fence = (token: number): Fence => ({ lease: LEASE, token });

/** A host as it announces itself. */
function host(id: string, overrides: { state?: 'ready' | 'draining'; slotsFree?: number } = {}) {
  return {
    id,
    url: `http://${id}.internal:8080`,
    state: 'ready' as const,
    capacity: 16,
    slotsFree: 16,
    ...overrides,
  };
}

async function hostIds(coord: Coordination): Promise<string[]> {
  return (await coord.hosts()).map((h) => h.id);
}

/** A superseded write of `acme/s1` by host `a`, with the given id. */
function superseded(id: number, overrides: Partial<SupersededWrite> = {}): SupersededWrite {
  return {
    key: LEASE,
    hostId: 'a',
    token: 1,
    id,
    kind: 'events',
    subpath: '',
    payload: [event(id, `lost ${id} ü 🚀`)],
    keptAt: 1_700_000_000_000 + id,
    ...overrides,
  };
}

/** A transcript line with a uuid. */
function entry(n: number): SessionStoreEntry {
  const uuid = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  return { type: 'user', uuid, message: { role: 'user', content: `line ${n}` } };
}

const MAIN_KEY: SessionKey = { projectKey: 'project', sessionId: 'acme-s1' };
const SUB_KEY: SessionKey = { ...MAIN_KEY, subpath: 'subagents/agent-1' };

/**
 * Host `a` holds `acme/s1` with token 1 and releases it, and host `b` takes it over with token 2: the
 * situation of a paused host that wakes up after another took its session.
 */
async function takeover(coord: Coordination): Promise<void> {
  assertMatches(await coord.acquire(LEASE, 'a', LONG_TTL_MS), { lease: { token: 1 } }, "a's acquire");
  assert.equal(await coord.release(LEASE, 'a', 1), true, "a's release");
  assertMatches(await coord.acquire(LEASE, 'b', LONG_TTL_MS), { lease: { token: 2 } }, "b's takeover");
}

/** The `Coordination` suite (with fencing through the bundle's other stores), in order. */
export const coordinationConformanceCases: readonly ConformanceCase<Stores>[] = [
  coordinationCase(HOSTS, 'heartbeat adds a host that hosts() lists, ordered by id', async (coord) => {
    assertSame(await coord.hosts(), [], 'hosts() before any heartbeat');
    await coord.heartbeat(host('h2'), LONG_TTL_MS);
    await coord.heartbeat(host('h1', { slotsFree: 3 }), LONG_TTL_MS);
    const hosts = await coord.hosts();
    assertSame(
      hosts.map((h) => h.id),
      ['h1', 'h2'],
      'the ids hosts() lists',
    );
    assertMatches(hosts[0], host('h1', { slotsFree: 3 }), 'the first host');
    assertMatches(hosts[1], host('h2'), 'the second host');
    for (const h of hosts) {
      // Both times come from one reading of the store's clock, give or take rounding to ms.
      assertBetween(h.expiresAt - h.lastHeartbeatAt, LONG_TTL_MS - 50, LONG_TTL_MS + 50, `${h.id}'s ttl`);
    }
  }),

  coordinationCase(HOSTS, 'a second heartbeat refreshes the entry', async (coord) => {
    await coord.heartbeat(host('h1'), LONG_TTL_MS);
    const [before] = await coord.hosts();
    await sleep(20);
    await coord.heartbeat(host('h1', { state: 'draining', slotsFree: 0 }), LONG_TTL_MS);
    const after = await coord.hosts();
    assert.equal(after.length, 1, 'hosts() after two heartbeats of one host');
    assertMatches(after[0], host('h1', { state: 'draining', slotsFree: 0 }), 'the refreshed host');
    assertAtLeast(after[0]!.lastHeartbeatAt, before!.lastHeartbeatAt + 10, 'lastHeartbeatAt 20 ms later');
    assertAtLeast(after[0]!.expiresAt, before!.expiresAt + 10, 'expiresAt 20 ms later');
  }),

  coordinationCase(
    HOSTS,
    'a host whose heartbeat expired is not listed until it beats again',
    async (coord) => {
      await coord.heartbeat(host('short'), SHORT_TTL_MS);
      await coord.heartbeat(host('long'), LONG_TTL_MS);
      assertSame(await hostIds(coord), ['long', 'short'], 'hosts() at once');
      await sleep(EXPIRY_WAIT_MS);
      assertSame(await hostIds(coord), ['long'], `hosts() after ${EXPIRY_WAIT_MS} ms`);
      await coord.heartbeat(host('short'), LONG_TTL_MS);
      assertSame(await hostIds(coord), ['long', 'short'], 'hosts() after it beats again');
    },
  ),

  coordinationCase(HOSTS, 'removeHost removes the entry; an unknown id is a no-op', async (coord) => {
    await coord.heartbeat(host('h1'), LONG_TTL_MS);
    await coord.heartbeat(host('h2'), LONG_TTL_MS);
    await coord.removeHost('h1');
    await coord.removeHost('unknown');
    assertSame(await hostIds(coord), ['h2'], 'hosts() after removeHost(h1)');
  }),

  coordinationCase(LEASES, 'the first acquire of a key takes it with token 1', async (coord) => {
    const result = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    assert.equal(result.acquired, true, 'acquired');
    assertMatches(result.lease, { key: LEASE, hostId: 'a', token: 1, live: true }, 'the lease acquired');
    assertSame(await coord.lease(LEASE), result.lease, 'lease() after acquire');
  }),

  coordinationCase(LEASES, 'the holder re-acquiring keeps its token and gets a new expiry', async (coord) => {
    const first = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    await sleep(20);
    const again = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    assertMatches(again, { acquired: true, lease: { hostId: 'a', token: 1, live: true } }, 'acquired again');
    assertAtLeast(again.lease.expiresAt, first.lease.expiresAt + 10, 'the expiry 20 ms later');
  }),

  coordinationCase(
    LEASES,
    'another host is refused a live lease, told who holds it; nothing changes',
    async (coord) => {
      const held = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
      const refused = await coord.acquire(LEASE, 'b', LONG_TTL_MS);
      assert.equal(refused.acquired, false, "b's acquire of a's live lease");
      assertSame(refused.lease, held.lease, 'the lease the refusal names');
      assertSame(await coord.lease(LEASE), held.lease, 'lease() after the refusal');
    },
  ),

  coordinationCase(LEASES, 'another host takes over an expired lease with token + 1', async (coord) => {
    await coord.acquire(LEASE, 'a', SHORT_TTL_MS);
    await sleep(EXPIRY_WAIT_MS);
    assertMatches(await coord.lease(LEASE), { hostId: 'a', token: 1, live: false }, 'lease() once expired');
    const taken = await coord.acquire(LEASE, 'b', LONG_TTL_MS);
    assertMatches(taken, { acquired: true, lease: { key: LEASE, hostId: 'b', token: 2, live: true } }, "b's");
    const back = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    assertMatches(
      back,
      { acquired: false, lease: { hostId: 'b', token: 2 } },
      "a's acquire after b took over",
    );
  }),

  coordinationCase(LEASES, 'the holder re-acquiring its own expired lease keeps its token', async (coord) => {
    await coord.acquire(LEASE, 'a', SHORT_TTL_MS);
    await sleep(EXPIRY_WAIT_MS);
    const again = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    assertMatches(again, { acquired: true, lease: { hostId: 'a', token: 1, live: true } }, 'acquired again');
  }),

  coordinationCase(
    LEASES,
    'release ends the lease only for its holder and token, and keeps it',
    async (coord) => {
      const held = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
      assert.equal(await coord.release(LEASE, 'b', 1), false, 'release by another host');
      assert.equal(await coord.release(LEASE, 'a', 2), false, 'release with another token');
      assert.equal(await coord.release('unknown', 'a', 1), false, 'release of an unknown key');
      assertSame(await coord.lease(LEASE), held.lease, 'lease() after the refused releases');
      assert.equal(await coord.release(LEASE, 'a', 1), true, 'release by the holder');
      assertMatches(
        await coord.lease(LEASE),
        { hostId: 'a', token: 1, live: false },
        'lease() after release',
      );
      const taken = await coord.acquire(LEASE, 'b', LONG_TTL_MS);
      assertMatches(taken, { acquired: true, lease: { hostId: 'b', token: 2, live: true } }, "b's acquire");
    },
  ),

  coordinationCase(LEASES, 'the holder re-acquiring after its own release keeps its token', async (coord) => {
    await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    await coord.release(LEASE, 'a', 1);
    const again = await coord.acquire(LEASE, 'a', LONG_TTL_MS);
    assertMatches(again, { acquired: true, lease: { hostId: 'a', token: 1, live: true } }, 'acquired again');
  }),

  coordinationCase(LEASES, 'renew extends the leases still held and returns the others', async (coord) => {
    for (const key of ['k1', 'k2', 'k3']) await coord.acquire(key, 'a', SHORT_TTL_MS);
    assertSame(await coord.renew('a', [], LONG_TTL_MS), [], 'renew of nothing');
    const asked = [
      { key: 'k1', token: 1 },
      { key: 'k2', token: 1 },
      { key: 'k3', token: 7 },
      { key: 'never', token: 1 },
    ];
    const lost = await coord.renew('a', asked, LONG_TTL_MS);
    assertSame([...lost].sort(), ['k3', 'never'], 'the keys renew could not extend');
    await sleep(EXPIRY_WAIT_MS);
    assertMatches(await coord.lease('k1'), { hostId: 'a', token: 1, live: true }, 'k1 after renew');
    assertMatches(await coord.lease('k2'), { hostId: 'a', token: 1, live: true }, 'k2 after renew');
    assertMatches(await coord.lease('k3'), { hostId: 'a', token: 1, live: false }, 'k3, not renewed');
    assert.equal(await coord.lease('never'), undefined, 'renew creates no lease');
  }),

  coordinationCase(
    LEASES,
    'renew revives an expired lease not taken over, not one taken over',
    async (coord) => {
      await coord.acquire('k1', 'a', SHORT_TTL_MS);
      await coord.acquire('k2', 'a', SHORT_TTL_MS);
      await sleep(EXPIRY_WAIT_MS);
      await coord.acquire('k2', 'b', LONG_TTL_MS);
      const asked = [
        { key: 'k1', token: 1 },
        { key: 'k2', token: 1 },
      ];
      assertSame(await coord.renew('a', asked, LONG_TTL_MS), ['k2'], 'the keys renew could not extend');
      assertMatches(await coord.lease('k1'), { hostId: 'a', token: 1, live: true }, 'k1 after renew');
      assertMatches(await coord.lease('k2'), { hostId: 'b', token: 2, live: true }, 'k2 after renew');
      assertSame(await coord.renew('b', [{ key: 'k2', token: 2 }], LONG_TTL_MS), [], "b's renew of k2");
    },
  ),

  coordinationCase(
    LEASES,
    'leases() reads many keys; lease() of a key never acquired is undefined',
    async (coord) => {
      const k1 = await coord.acquire('k1', 'a', LONG_TTL_MS);
      await coord.acquire('k2', 'b', LONG_TTL_MS);
      await coord.release('k2', 'b', 1);
      assert.equal(await coord.lease('never'), undefined, 'lease() of a key never acquired');
      const found = await coord.leases(['k1', 'never', 'k2']);
      assertSame([...found.keys()].sort(), ['k1', 'k2'], 'the keys leases() found');
      assertSame(found.get('k1'), k1.lease, 'k1 in leases()');
      assertMatches(found.get('k2'), { key: 'k2', hostId: 'b', token: 1, live: false }, 'the released k2');
      assert.equal((await coord.leases([])).size, 0, 'leases() of no keys');
    },
  ),

  coordinationCase(
    LEASES,
    'deleteLease removes the lease for good; an unknown key is a no-op',
    async (coord) => {
      await coord.acquire('k1', 'a', LONG_TTL_MS);
      await coord.acquire('k2', 'a', LONG_TTL_MS);
      await coord.deleteLease('k1');
      await coord.deleteLease('unknown');
      assert.equal(await coord.lease('k1'), undefined, 'lease() after deleteLease');
      assertMatches(await coord.lease('k2'), { hostId: 'a', token: 1, live: true }, 'the other lease');
      // The key starts over: its session is gone, so nothing can be written under its old tokens.
      const again = await coord.acquire('k1', 'b', LONG_TTL_MS);
      assertMatches(again, { acquired: true, lease: { hostId: 'b', token: 1 } }, 'acquire after deleteLease');
    },
  ),

  coordinationCase(
    LEASES,
    'a call whose signal has fired rejects with aborted and changes nothing',
    async (coord) => {
      const signal = firedSignal();
      await assertRejectsWithCode(
        coord.heartbeat(host('h1'), LONG_TTL_MS, { signal }),
        'aborted',
        'heartbeat',
      );
      await assertRejectsWithCode(coord.acquire(LEASE, 'a', LONG_TTL_MS, { signal }), 'aborted', 'acquire');
      await assertRejectsWithCode(
        coord.keepSuperseded(superseded(1), { signal }),
        'aborted',
        'keepSuperseded',
      );
      await assertRejectsWithCode(coord.lease(LEASE, { signal }), 'aborted', 'lease');
      assertSame(await coord.hosts(), [], 'hosts() after the aborted heartbeat');
      assert.equal(await coord.lease(LEASE), undefined, 'lease() after the aborted acquire');
      assertSame(await coord.superseded(LEASE), [], 'superseded() after the aborted keep');
    },
  ),

  coordinationCase(
    SUPERSEDED,
    'keeps superseded writes per key, oldest first, as they were given',
    async (coord) => {
      assertSame(await coord.superseded(LEASE), [], 'superseded() of a key with none');
      const writes = [
        superseded(1),
        superseded(2, {
          kind: 'transcript',
          subpath: 'subagents/agent-1',
          payload: [{ text: 'ü\u0000 "q"' }],
        }),
        superseded(3, { hostId: 'b', token: 2, kind: 'registry', payload: { status: 'idle', turns: 3 } }),
      ];
      for (const write of writes) await coord.keepSuperseded(write);
      const elsewhere = superseded(1, { key: 'acme/s2' });
      await coord.keepSuperseded(elsewhere);
      assertSame(await coord.superseded(LEASE), writes, 'superseded() of acme/s1');
      assertSame(await coord.superseded('acme/s2'), [elsewhere], 'superseded() of acme/s2');
    },
  ),

  coordinationCase(SUPERSEDED, 'keeping a write again (same host and id) stores it once', async (coord) => {
    await coord.keepSuperseded(superseded(1));
    await coord.keepSuperseded(superseded(1));
    await coord.keepSuperseded(superseded(1, { hostId: 'b' }));
    assertSame(
      await coord.superseded(LEASE),
      [superseded(1), superseded(1, { hostId: 'b' })],
      'superseded()',
    );
  }),

  coordinationCase(SUPERSEDED, "deleteSuperseded removes that key's writes only", async (coord) => {
    const elsewhere = superseded(3, { key: 'acme/s2' });
    for (const write of [superseded(1), superseded(2), elsewhere]) await coord.keepSuperseded(write);
    await coord.deleteSuperseded(LEASE);
    await coord.deleteSuperseded('unknown');
    assertSame(await coord.superseded(LEASE), [], 'the deleted key');
    assertSame(await coord.superseded('acme/s2'), [elsewhere], 'the other key');
    await coord.keepSuperseded(superseded(1));
    assertSame(await coord.superseded(LEASE), [superseded(1)], 'kept again after the delete');
  }),

  coordinationCase(
    FENCING,
    'a registry update applies under the current token, not a stale one',
    async (coord, { registry }) => {
      await registry.create(record('s1'));
      await takeover(coord);
      const stale = registry.update(S1, { title: 'stale', turns: 9 }, { fence: fence(1) });
      await assertRejectsWithCode(stale, 'lease_lost', 'update under the stale token');
      assertSame(await registry.get(S1), record('s1'), 'the record after the refused update');
      await registry.update(S1, { title: 'current', turns: 2 }, { fence: fence(2) });
      assertMatches(
        await registry.get(S1),
        { title: 'current', turns: 2 },
        'the record after the fenced update',
      );
    },
  ),

  coordinationCase(
    FENCING,
    'an event append applies under the current token, not a stale one',
    async (coord, { eventLog }) => {
      await coord.acquire(LEASE, 'a', LONG_TTL_MS);
      await eventLog.append(LEASE, [event(1)], { fence: fence(1) });
      await coord.release(LEASE, 'a', 1);
      await coord.acquire(LEASE, 'b', LONG_TTL_MS);
      const stale = eventLog.append(LEASE, [event(2, 'stale'), event(3, 'stale')], { fence: fence(1) });
      await assertRejectsWithCode(stale, 'lease_lost', 'append under the stale token');
      assertSame(
        await eventLog.list(LEASE, { after: 0, limit: 10 }),
        [event(1)],
        'the events after the refusal',
      );
      await eventLog.append(LEASE, [event(2), event(3)], { fence: fence(2) });
      const all = [event(1), event(2), event(3)];
      assertSame(
        await eventLog.list(LEASE, { after: 0, limit: 10 }),
        all,
        'the events after the fenced append',
      );
    },
  ),

  coordinationCase(
    FENCING,
    'a transcript append applies under the current token, not a stale one',
    async (coord, stores) => {
      const transcripts = transcriptsOf(stores);
      const other = { ...MAIN_KEY, sessionId: 'acme-other' };
      await coord.acquire(LEASE, 'a', LONG_TTL_MS);
      // Twice on each key: a store may take another path for a key it has written before.
      for (const [key, n] of [
        [MAIN_KEY, 1],
        [MAIN_KEY, 2],
        [SUB_KEY, 11],
        [SUB_KEY, 12],
      ] as const) {
        await transcripts.append(key, [entry(n)], { fence: fence(1) });
      }
      await coord.release(LEASE, 'a', 1);
      await coord.acquire(LEASE, 'b', LONG_TTL_MS);
      for (const [key, n] of [
        [MAIN_KEY, 3],
        [SUB_KEY, 13],
        [other, 21],
      ] as const) {
        const stale = transcripts.append(key, [entry(n)], { fence: fence(1) });
        await assertRejectsWithCode(
          stale,
          'lease_lost',
          `append to ${key.subpath ?? key.sessionId}, stale token`,
        );
      }
      assertSame(
        await transcripts.load(MAIN_KEY),
        [entry(1), entry(2)],
        'the main transcript after the refusals',
      );
      assertSame(await transcripts.load(SUB_KEY), [entry(11), entry(12)], 'the subpath after the refusals');
      assert.equal(await transcripts.load(other), null, 'the key a refused append would have made');
      await transcripts.append(MAIN_KEY, [entry(3)], { fence: fence(2) });
      await transcripts.append(SUB_KEY, [entry(13)], { fence: fence(2) });
      assertSame(await transcripts.load(MAIN_KEY), [entry(1), entry(2), entry(3)], 'the main transcript');
      assertSame(await transcripts.load(SUB_KEY), [entry(11), entry(12), entry(13)], 'the subpath');
    },
  ),

  coordinationCase(
    FENCING,
    'a fence naming a lease that does not exist is refused by every store',
    async (coord, stores) => {
      await stores.registry.create(record('s1'));
      await coord.acquire(LEASE, 'a', LONG_TTL_MS);
      await coord.deleteLease(LEASE);
      for (const gone of [{ lease: 'acme/never', token: 1 }, fence(1)]) {
        const what = `under a fence on ${gone.lease}`;
        const options = { fence: gone };
        await assertRejectsWithCode(
          stores.registry.update(S1, { turns: 5 }, options),
          'lease_lost',
          `update ${what}`,
        );
        await assertRejectsWithCode(
          stores.eventLog.append(LEASE, [event(1)], options),
          'lease_lost',
          `events ${what}`,
        );
        const transcript = transcriptsOf(stores).append(MAIN_KEY, [entry(1)], options);
        await assertRejectsWithCode(transcript, 'lease_lost', `transcript ${what}`);
      }
      assertSame(await stores.registry.get(S1), record('s1'), 'the record');
      assertSame(await stores.eventLog.list(LEASE, { after: 0, limit: 10 }), [], 'the events');
      assert.equal(await transcriptsOf(stores).load(MAIN_KEY), null, 'the transcript');
    },
  ),

  coordinationCase(FENCING, 'writes without a fence ignore the leases', async (coord, stores) => {
    await stores.registry.create(record('s1'));
    await takeover(coord);
    await stores.registry.update(S1, { turns: 4 });
    await stores.eventLog.append(LEASE, [event(1)]);
    await transcriptsOf(stores).append(MAIN_KEY, [entry(1)]);
    assert.equal((await stores.registry.get(S1))?.turns, 4, 'turns after the update');
    assert.equal(await stores.eventLog.lastSeq(LEASE), 1, 'lastSeq after the append');
    assertSame(await transcriptsOf(stores).load(MAIN_KEY), [entry(1)], 'the transcript after the append');
  }),

  coordinationCase(
    CONCURRENCY,
    `${RACERS} hosts acquiring one key at once: one wins, with token 1`,
    async (coord) => {
      const ids = Array.from({ length: RACERS }, (_, i) => `host-${i}`);
      const results = await Promise.all(ids.map((id) => coord.acquire(LEASE, id, LONG_TTL_MS)));
      const winners = results.filter((r) => r.acquired);
      assert.equal(winners.length, 1, 'how many acquires won');
      const winner = winners[0]!.lease;
      assertMatches(winner, { key: LEASE, token: 1, live: true }, 'the lease won');
      for (const r of results)
        assertMatches(r.lease, { hostId: winner.hostId, token: 1 }, 'the lease each names');
      assertMatches(await coord.lease(LEASE), { hostId: winner.hostId, token: 1 }, 'lease() after the race');
    },
  ),

  coordinationCase(
    CONCURRENCY,
    'fenced appends racing a takeover land before it or are refused',
    async (coord, { eventLog }) => {
      await coord.acquire(LEASE, 'a', LONG_TTL_MS);
      await coord.release(LEASE, 'a', 1);
      // One event each, with its own seq, so that only the fence can refuse one.
      const appends = Array.from({ length: 30 }, (_, i) =>
        eventLog.append(LEASE, [event(i + 1)], { fence: fence(1) }).then(
          () => i + 1,
          (err: unknown) => {
            if (isBerthError(err, 'lease_lost')) return undefined;
            throw err;
          },
        ),
      );
      await sleep(2);
      assertMatches(
        await coord.acquire(LEASE, 'b', LONG_TTL_MS),
        { lease: { hostId: 'b', token: 2 } },
        'takeover',
      );
      // What b reads once it holds the lease must be every write under the old token that ever lands.
      const seenAtTakeover = (await eventLog.list(LEASE, { after: 0, limit: 100 })).map((e) => e.seq);
      const landed = (await Promise.all(appends)).filter((seq) => seq !== undefined);
      assertSame(seenAtTakeover, landed, 'the seqs b read at its takeover vs the appends that resolved');
      const late = eventLog.append(LEASE, [event(99)], { fence: fence(1) });
      await assertRejectsWithCode(late, 'lease_lost', 'an append under the old token after the takeover');
    },
  ),

  coordinationCase(
    CONCURRENCY,
    'hosts on separate clients race for one lease: one wins, and is fenced off once taken over',
    async (_coord, _stores, all) => {
      const racers = Array.from({ length: RACERS }, (_, i) => ({
        id: `host-${i}`,
        stores: all[i % all.length]!,
      }));
      const results = await Promise.all(
        racers.map((r) => coordinationOf(r.stores).acquire(LEASE, r.id, SHORT_TTL_MS)),
      );
      assert.equal(results.filter((r) => r.acquired).length, 1, 'how many acquires won');
      const winner = racers[results.findIndex((r) => r.acquired)]!;
      const loser = racers.find((r) => r.stores !== winner.stores)!;
      await winner.stores.eventLog.append(LEASE, [event(1)], { fence: fence(1) });
      await sleep(EXPIRY_WAIT_MS);
      const taken = await coordinationOf(loser.stores).acquire(LEASE, loser.id, LONG_TTL_MS);
      assertMatches(
        taken,
        { acquired: true, lease: { hostId: loser.id, token: 2 } },
        'the takeover after expiry',
      );
      const late = winner.stores.eventLog.append(LEASE, [event(2)], { fence: fence(1) });
      await assertRejectsWithCode(late, 'lease_lost', "the first winner's append after the takeover");
      assertSame(await loser.stores.eventLog.list(LEASE, { after: 0, limit: 10 }), [event(1)], 'the events');
    },
    { shared: true },
  ),
];
