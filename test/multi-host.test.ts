/**
 * Many hosts as one service, on one machine: three `berth serve` processes sharing PostgreSQL and an S3
 * bucket (s3rver), two `berth router`s in front, and the real `claude` subprocess against the scripted
 * model. Sessions spread by rendezvous hashing; any host forwards to the one that runs a session; a
 * SIGKILLed host's sessions answer elsewhere with their history; a SIGSTOPped owner is fenced when it
 * wakes (no duplicate or lost event, what it wrote late kept aside, its subprocess gone); a fourth host
 * takes exactly the sessions that now hash to it, never mid-turn; a draining host hands its sessions
 * over.
 */
import { readlink } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rankHosts, routingKey } from '../src/placement.js';
import type { HostEntry } from '../src/stores/coordination.js';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import type { ApiEvent, ApiSession } from './helpers/api-events.js';
import { postgresBackend, s3Backend, type TestStore } from './helpers/backends.js';
import { Cluster, call, history, sessionSource, turn, type SessionSource } from './helpers/cluster.js';
import { hostProcesses } from './helpers/processes.js';
import { eventually } from './helpers/wait.js';

const TTL = '2s';
const pg = postgresBackend();
const s3 = s3Backend();
let store: TestStore;
let model: MockModel;
let cluster: Cluster;
let stores: Stores;
/** The agent and environment every session here is made from. */
let source: SessionSource;

beforeAll(async () => {
  store = await pg.create();
  const bucket = await s3.create();
  model = await startMockModel({
    scenarios: [
      {
        name: 'slow reply',
        match: { userText: 'slow probe #' },
        steps: [
          { text: 'a slow answer, word by word, that takes seconds to stream', fault: { chunkDelayMs: 400 } },
        ],
      },
    ],
  });
  cluster = new Cluster({
    store: store.url,
    blobStore: bucket.url.replace('/sessions?', '/blobs?'),
    modelEndpoint: model.url,
    leaseTtl: TTL,
  });
  await Promise.all(['h1', 'h2', 'h3'].map((id) => cluster.addHost(id)));
  await cluster.addRouter();
  await cluster.addRouter();
  stores = await openStores(store.url);
  source = await sessionSource(cluster.routers[0]!.url);
}, 120_000);

afterAll(async () => {
  await cluster?.close();
  await stores?.close();
  await model?.close();
  await store?.cleanup();
  await s3.close();
});

const router = (i = 0): string => cluster.routers[i]!.url;

async function liveHosts(): Promise<HostEntry[]> {
  return stores.coordination!.hosts();
}

/** Where a session should be when no lease says otherwise. */
async function choiceOf(id: string): Promise<string> {
  return rankHosts(routingKey('default', id), await liveHosts())[0]!.id;
}

async function holderOf(id: string): Promise<string | undefined> {
  const lease = await stores.coordination!.lease(routingKey('default', id));
  return lease?.live ? lease.hostId : undefined;
}

function expectContiguous(events: readonly ApiEvent[]): void {
  expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
}

/** Pids of processes under the host's data dir whose cwd is the session's workspace. */
async function sessionProcesses(dataDir: string, id: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await hostProcesses(dataDir)) {
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
    if (cwd.includes(`/${id}`)) found.push(pid);
  }
  return found;
}

const created: string[] = [];
/** The session the SIGKILL test moved to another host: the SIGSTOP test pauses that host. */
let moved: string | undefined;

describe('many hosts, one service', () => {
  it('routes each new session to its rendezvous choice and spreads them over the hosts', async () => {
    const listed = await call<{ data: Array<{ id: string; state: string; slots_free: number }> }>(
      router(),
      'GET',
      '/v1/hosts',
    );
    expect(listed.body.data.map((h) => [h.id, h.state])).toEqual([
      ['h1', 'ready'],
      ['h2', 'ready'],
      ['h3', 'ready'],
    ]);
    const placed = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const res = await call<ApiSession>(router(), 'POST', '/v1/sessions', {
        ...source,
        title: `spread ${i}`,
      });
      expect(res.status).toBe(200);
      expect(res.host).toBe(await choiceOf(res.body.id));
      expect(await holderOf(res.body.id)).toBe(res.host);
      placed.set(res.host!, (placed.get(res.host!) ?? 0) + 1);
      created.push(res.body.id);
    }
    expect([...placed.keys()].sort()).toEqual(['h1', 'h2', 'h3']);
  });

  it('refuses a second session with a taken id, and the session keeps its host', async () => {
    const id = created[2]!;
    const holder = await holderOf(id);
    expect(holder).toBeDefined();
    for (const base of [router(), ...[...cluster.hosts.values()].map((h) => h.url)]) {
      const again = await call<{ error: { details: { error_code: string } } }>(base, 'POST', '/v1/sessions', {
        ...source,
        id,
      });
      expect(again.status).toBe(409);
      expect(again.body.error.details.error_code).toBe('session_exists');
      expect(await holderOf(id)).toBe(holder);
    }
  });

  it('answers for a session through either router and through any host, from the host that runs it', async () => {
    const id = created[0]!;
    const owner = await holderOf(id);
    const events = await turn(router(), id, 'hello from the router');
    expect(events.some((e) => e.type === 'agent.message')).toBe(true);
    expect((await call(router(0), 'GET', `/v1/sessions/${id}`)).host).toBe(owner);
    expect((await call(router(1), 'GET', `/v1/sessions/${id}`)).host).toBe(owner);
    for (const host of cluster.hosts.values()) {
      const res = await call(host.url, 'GET', `/v1/sessions/${id}`);
      expect(res.status).toBe(200);
      expect(res.host).toBe(owner);
    }
    // A stream opened on another host is forwarded, and carries the events of a turn run through the router.
    const other = [...cluster.hosts.values()].find((h) => h.name !== owner)!;
    const stream = await fetch(`${other.url}/v1/sessions/${id}/events/stream`);
    expect(stream.headers.get('x-berth-host')).toBe(owner);
    const reader = stream.body!.getReader();
    let text = '';
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString();
        if (text.includes('event: session.status_idle')) return;
      }
    })();
    await turn(router(1), id, 'streamed through a forward');
    await reading;
    await reader.cancel();
    expect(text).toContain('streamed through a forward');
  });

  it('a SIGKILLed host: its sessions answer through the router on another host, with their history', async () => {
    const victim = 'h3';
    const id = await ownedBy(victim);
    const before = await turn(router(), id, 'remember the word quince');
    expect(before.length).toBeGreaterThan(0);
    const historyBefore = await history(router(), id);
    // What the host has shipped to the store (its spool ships within milliseconds): the store's view is
    // what another host starts from; what a killed host had not shipped stays in its spool (see below).
    await eventually(
      async () => (await stores.eventLog.lastSeq(routingKey('default', id))) === historyBefore.at(-1)!.seq,
      'the events to be in the store',
    );
    const host = cluster.host(victim);
    host.child.kill('SIGKILL');
    await host.exit;
    const killedAt = Date.now();
    await eventually(
      async () =>
        (await call(router(), 'GET', `/v1/sessions/${id}`)).status === 200 && (await holderOf(id)) !== victim,
      'the session to answer from another host',
      { boundMs: 30_000 },
    );
    const answer = await call(router(), 'GET', `/v1/sessions/${id}`);
    expect(answer.host).not.toBe(victim);
    const after = await history(router(), id);
    expect(after.slice(0, historyBefore.length)).toEqual(historyBefore);
    const events = await turn(router(), id, 'what was the word?');
    expect(events.some((e) => e.type === 'agent.message')).toBe(true);
    const request = model.requests.findLast((r) => r.isMain && r.userText === 'what was the word?');
    expect(JSON.stringify(request?.messages)).toContain('remember the word quince');
    expectContiguous(await history(router(), id));
    moved = id;
    process.stderr.write(
      `multi-host: failover after SIGKILL took ${Date.now() - killedAt} ms (lease ttl ${TTL})\n`,
    );
    // The dead host leaves the list once its heartbeat expires.
    await eventually(
      async () => !(await liveHosts()).some((h) => h.id === victim),
      'h3 to leave the host list',
    );
  });

  it('a SIGSTOPped owner is fenced when it wakes: no duplicate or lost event, its late writes kept aside, its subprocess gone', async () => {
    // The session that has moved once already, paused on its second host.
    const id = moved!;
    const owner = (await holderOf(id))!;
    await turn(router(), id, 'the first turn before the pause');
    const host = cluster.host(owner);
    // A turn whose reply takes seconds; the owner is stopped while it streams.
    const sent = await call(router(), 'POST', `/v1/sessions/${id}/events`, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'slow probe #1#' }] }],
    });
    expect(sent.status).toBe(200);
    await eventually(
      async () =>
        (await history(router(), id)).some(
          (e) => e.type === 'session.status_running' && e.seq > sent.body.data[0].seq,
        ),
      'the slow turn to start',
    );
    const storedBeforePause = await history(router(), id);
    // The pause must land mid-turn: while the model is still streaming the reply, the CLI cannot have
    // finished the turn, so the host cannot have stored its end.
    await eventually(() => model.openResponses > 0, 'the slow reply to be streaming');
    host.child.kill('SIGSTOP');
    // Past the lease: the next request takes the session over on another host. (A stopped host still
    // accepts connections, so the test waits until the routers no longer list it.)
    await eventually(async () => (await holderOf(id)) === undefined, 'the lease to expire', {
      boundMs: 20_000,
    });
    await eventually(
      async () => !(await liveHosts()).some((h) => h.id === owner),
      'the owner to leave the list',
      {
        boundMs: 20_000,
      },
    );
    // ...and until every router has caught up (listing the hosts refreshes a router's own list).
    await eventually(
      async () => {
        for (const { url } of cluster.routers) {
          const listed = await call<{ data: Array<{ id: string }> }>(url, 'GET', '/v1/hosts');
          if (listed.body.data.some((h) => h.id === owner)) return false;
        }
        return true;
      },
      'every router to drop the owner',
      { boundMs: 20_000 },
    );
    const events = await turn(router(), id, 'after the takeover');
    expect(events.some((e) => e.type === 'agent.message')).toBe(true);
    const newOwner = await holderOf(id);
    expect(newOwner).toBeDefined();
    expect(newOwner).not.toBe(owner);
    host.child.kill('SIGCONT');

    // Woken, the old owner finds its lease gone: its writes are refused and kept aside, its subprocess ends.
    await eventually(
      async () => (await sessionProcesses(host.dataDir, id)).length === 0,
      'the old owner to stop the subprocess',
      { boundMs: 30_000 },
    );
    await eventually(
      async () => (await stores.coordination!.superseded(routingKey('default', id))).length > 0,
      'the late writes to be kept aside',
      { boundMs: 30_000 },
    );
    const kept = await stores.coordination!.superseded(routingKey('default', id));
    expect(kept.every((w) => w.hostId === owner)).toBe(true);
    const all = await history(router(), id);
    expectContiguous(all);
    // What the old owner stored before the pause is all there, once.
    expect(all.slice(0, storedBeforePause.length)).toEqual(storedBeforePause);
    // The interrupted turn ended on the new owner; the conversation resumed from the store.
    expect(all.some((e) => e.type === 'session.error' && e.error.code === 'host_restarted')).toBe(true);
    const request = model.requests.findLast((r) => r.isMain && r.userText === 'after the takeover');
    expect(JSON.stringify(request?.messages)).toContain('the first turn before the pause');
    // The old owner answers from wherever the session runs now (it may move back to the old owner, its
    // rendezvous choice, at its next idle moment).
    const fromOld = await call(host.url, 'GET', `/v1/sessions/${id}`);
    expect(fromOld.status).toBe(200);
    expect(fromOld.host).toBe(await holderOf(id));
  }, 180_000);

  it('a fourth host takes exactly the sessions that now hash to it, at idle moments, never mid-turn', async () => {
    // Earlier tests changed the host list (a host died, one came back): wait until every session a host
    // holds is on its rendezvous choice, so that only h4's arrival moves sessions from here on.
    await eventually(
      async () => {
        for (const id of created) {
          const holder = await holderOf(id);
          if (holder !== undefined && holder !== (await choiceOf(id))) return false;
        }
        return true;
      },
      'the sessions to settle on their hosts',
      { boundMs: 60_000 },
    );
    const before = await liveHosts();
    const future = [...before, { ...before[0]!, id: 'h4' }];
    const moving = created.filter((id) => rankHosts(routingKey('default', id), future)[0]!.id === 'h4');
    expect(moving.length).toBeGreaterThan(0);
    // One of them is mid-turn when h4 joins: it finishes its turn where it is, then moves.
    const busy = moving[0]!;
    const sent = await call(router(), 'POST', `/v1/sessions/${busy}/events`, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'slow probe #2#' }] }],
    });
    expect(sent.status).toBe(200);
    const from = sent.body.data[0].seq as number;
    await eventually(
      async () =>
        (await history(router(), busy)).some((e) => e.type === 'session.status_running' && e.seq > from),
      'the slow turn to start',
    );
    const busyHost = await holderOf(busy);
    await cluster.addHost('h4');
    expect((await liveHosts()).map((h) => h.id)).toContain('h4');
    const held = async (): Promise<string[]> => {
      const still: string[] = [];
      for (const id of moving) {
        const holder = await holderOf(id);
        if (holder !== undefined) still.push(`${id} on ${holder}`);
      }
      return still;
    };
    await eventually(
      async () => (await held()).length === 0,
      'the sessions that hash to h4 to be released by their hosts',
      { boundMs: 60_000 },
    ).catch(async (err: Error) => {
      const statuses = await Promise.all(
        moving.map(
          async (id) =>
            `${id}: ${(await call<ApiSession>(router(), 'GET', `/v1/sessions/${id}`)).body.berth?.status}`,
        ),
      );
      throw new Error(`${err.message}: still held ${(await held()).join(', ')}; ${statuses.join(', ')}`);
    });
    // The busy session's turn ended normally, on its old host, before it was suspended.
    const turnEvents = (await history(router(), busy)).filter((e) => e.seq > from);
    const idle = turnEvents.findIndex((e) => e.type === 'session.status_idle');
    const suspended = turnEvents.findIndex((e) => e.type === 'session.status_suspended');
    expect(turnEvents[idle]).toMatchObject({ stop_reason: { type: 'end_turn' } });
    expect(suspended).toBeGreaterThan(idle);
    expect(turnEvents.some((e) => e.type === 'session.error')).toBe(false);
    expect(busyHost).not.toBe('h4');
    // The others keep their holders.
    for (const id of created.filter((i) => !moving.includes(i))) {
      const holder = await holderOf(id);
      if (holder !== undefined) expect(holder).not.toBe('h4');
    }
    process.stderr.write(
      `multi-host: adding a 4th host moved ${moving.length} of ${created.length} sessions\n`,
    );
    // The next request for a moved session runs it on h4, with its history.
    const res = await call(router(), 'GET', `/v1/sessions/${busy}`);
    expect(res.host).toBe('h4');
    const events = await turn(router(), busy, 'on the new host');
    expect(events.some((e) => e.type === 'agent.message')).toBe(true);
    expectContiguous(await history(router(), busy));
  }, 120_000);

  it('a draining host hands its sessions over', async () => {
    const id = created[1]!;
    await turn(router(), id, 'before the drain');
    const owner = (await holderOf(id))!;
    const host = cluster.host(owner);
    host.child.kill('SIGTERM');
    expect(await host.exit).toBe(0);
    expect(await holderOf(id)).toBeUndefined();
    expect((await liveHosts()).some((h) => h.id === owner)).toBe(false);
    const events = await turn(router(), id, 'after the drain');
    expect(events.some((e) => e.type === 'agent.message')).toBe(true);
    expect(await holderOf(id)).not.toBe(owner);
    expectContiguous(await history(router(), id));
  });
});

/** A session created earlier that `hostId` holds now (loading it there if needed). */
async function ownedBy(hostId: string): Promise<string> {
  for (const id of created) {
    if ((await holderOf(id)) === hostId) return id;
  }
  throw new Error(`no session on ${hostId}`);
}
