import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BerthError, isBerthError } from '../errors.js';
import { runSessionStoreConformance } from '../testing/session-store-conformance.js';
import { DurableMirror } from './durable-mirror.js';
import { event } from '../testing/event-log-conformance.js';
import { record } from '../testing/registry-conformance.js';
import { openSqliteDatabase, SqliteEventLog, SqliteRegistry, SqliteSessionStore } from './sqlite/index.js';
import type { EventLog, SessionRegistry } from './types.js';

/** A real (SQLite) store whose availability the test switches, like a backend behind a flaky network. */
class SwitchableStore implements SessionStore {
  down = false;
  /** Fail after writing, once: the backend got the batch but the mirror never heard back. */
  failAfterWriteOnce = false;
  appendCalls = 0;
  /** The batches that reached the store, in order: their subpath (`''` for main) and entry numbers. */
  readonly shipped: Array<{ subpath: string; n: unknown[] }> = [];
  constructor(readonly inner: SqliteSessionStore) {}

  async append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    this.appendCalls++;
    if (this.down) throw new Error('connection refused');
    await this.inner.append(key, entries);
    this.shipped.push({ subpath: key.subpath ?? '', n: entries.map((e) => e.n) });
    if (this.failAfterWriteOnce) {
      this.failAfterWriteOnce = false;
      throw new Error('connection reset after the write');
    }
  }
  load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    if (this.down) return Promise.reject(new Error('connection refused'));
    return this.inner.load(key);
  }
  listSessions(projectKey: string) {
    return this.inner.listSessions(projectKey);
  }
  listSessionSummaries(projectKey: string) {
    return this.inner.listSessionSummaries(projectKey);
  }
  delete(key: SessionKey) {
    return this.inner.delete(key);
  }
  listSubkeys(key: { projectKey: string; sessionId: string }) {
    return this.inner.listSubkeys(key);
  }
}

const entry = (n: number, extra: Record<string, unknown> = {}): SessionStoreEntry => ({
  type: 'user',
  uuid: `u-${n}`,
  n,
  ...extra,
});

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let dir: string;
let cleanups: Array<() => Promise<void> | void>;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-mirror-'));
  cleanups = [];
});

afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  await rm(dir, { recursive: true, force: true });
});

function backend(): SwitchableStore {
  const db = openSqliteDatabase(':memory:');
  cleanups.push(() => void db.close());
  return new SwitchableStore(new SqliteSessionStore({ db }));
}

function mirror(store: SessionStore, extra: Partial<ConstructorParameters<typeof DurableMirror>[0]> = {}) {
  const m = new DurableMirror({
    backend: store,
    spoolPath: path.join(dir, 'spool.db'),
    minBackoffMs: 5,
    maxBackoffMs: 20,
    ...extra,
  });
  cleanups.push(() => m.close());
  return m;
}

const KEY = { projectKey: 'acme', sessionId: 's1' };

describe('DurableMirror', () => {
  it('keeps accepting entries while the backend is down, tells each session once, and drains on recovery', async () => {
    const store = backend();
    const delayed: string[] = [];
    let recovered = 0;
    const m = mirror(store, {
      onDelayed: (key) => delayed.push(key.sessionId),
      onRecovered: () => recovered++,
    });
    await m.append(KEY, [entry(1)]);
    await m.drain();
    store.down = true;
    for (let n = 2; n <= 20; n++) await m.append(KEY, [entry(n)]);
    await m.append({ projectKey: 'acme', sessionId: 's2' }, [entry(100)]);
    await until(() => m.delayed, 'the outage to be noticed');
    await m.append(KEY, [entry(21)]);
    // Read-your-writes on this host needs the backend for the shipped part; once it is back, load merges.
    expect(m.backlog).toBeGreaterThan(0);
    expect(delayed.sort()).toEqual(['s1', 's2']);

    store.down = false;
    await m.drain();
    expect(recovered).toBe(1);
    expect(m.delayed).toBe(false);
    expect((await store.inner.load(KEY))!.map((e) => e.n)).toEqual(
      Array.from({ length: 21 }, (_, i) => i + 1),
    );
    expect(await store.inner.load({ projectKey: 'acme', sessionId: 's2' })).toEqual([entry(100)]);

    // A second outage is a new outage: the session is told again.
    store.down = true;
    await m.append(KEY, [entry(22)]);
    await until(() => delayed.length === 3, 'the second notice');
    store.down = false;
    await m.drain();
  });

  it('load returns shipped and spooled entries together, each uuid once', async () => {
    const store = backend();
    const m = mirror(store);
    await m.append(KEY, [entry(1), entry(2)]);
    await m.drain();
    store.down = true;
    await m.append(KEY, [entry(2), entry(3), { type: 'title', title: 'no uuid' }]);
    store.down = false;
    // The backend is up for reads but the shipper may not have run yet: load must merge either way.
    const loaded = (await m.load(KEY))!;
    expect(loaded.filter((e) => e.uuid).map((e) => e.n)).toEqual([1, 2, 3]);
    expect(loaded.at(-1)).toEqual({ type: 'title', title: 'no uuid' });
  });

  it('a restarted host ships what its spool still holds', async () => {
    const store = backend();
    store.down = true;
    const first = mirror(store);
    for (let n = 1; n <= 5; n++) await first.append(KEY, [entry(n)]);
    await first.close();
    store.down = false;
    const second = mirror(store);
    await second.drain();
    expect((await store.inner.load(KEY))!.map((e) => e.n)).toEqual([1, 2, 3, 4, 5]);
  });

  it('ships again after a failure that followed the write, without duplicates', async () => {
    const store = backend();
    store.failAfterWriteOnce = true;
    const m = mirror(store);
    // Entries without a uuid are what the store cannot skip by itself: the mirror must look first.
    await m.append(KEY, [entry(1), { type: 'ai-title', aiTitle: 'no uuid' }, entry(2)]);
    await m.drain();
    expect(store.appendCalls).toBe(1);
    expect((await store.inner.load(KEY))!.map((e) => e.n ?? e.type)).toEqual([1, 'ai-title', 2]);
    // A batch that did not reach the store before the failure is still shipped.
    store.failAfterWriteOnce = true;
    await m.append(KEY, [{ type: 'ai-title', aiTitle: 'again' }]);
    await m.drain();
    const titles = (await store.inner.load(KEY))!.filter((e) => e.type === 'ai-title');
    expect(titles.map((e) => e.aiTitle)).toEqual(['no uuid', 'again']);
  });

  it('keeps each key in order and ships consecutive batches of a key together', async () => {
    const store = backend();
    store.down = true;
    const m = mirror(store);
    const sub = { ...KEY, subpath: 'subagents/agent-1' };
    await m.append(KEY, [entry(1)]);
    await m.append(KEY, [entry(2)]);
    await m.append(sub, [entry(50)]);
    await m.append(KEY, [entry(3)]);
    expect((await m.listSubkeys(KEY)).sort()).toEqual(['subagents/agent-1']);
    store.down = false;
    await m.drain();
    // Three batches (KEY 1+2, sub, KEY 3), not four: the two consecutive batches of KEY went together.
    const batches = (subpath: string) => store.shipped.filter((b) => b.subpath === subpath).map((b) => b.n);
    expect(batches('')).toEqual([[1, 2], [3]]);
    expect(batches('subagents/agent-1')).toEqual([[50]]);
    expect(store.shipped).toHaveLength(3);
    expect((await store.inner.load(KEY))!.map((e) => e.n)).toEqual([1, 2, 3]);
    expect(await store.inner.load(sub)).toEqual([entry(50)]);
  });

  it('delete drops what is spooled for the session', async () => {
    const store = backend();
    store.down = true;
    const m = mirror(store);
    await m.append(KEY, [entry(1)]);
    await m.append({ ...KEY, subpath: 'subagents/a' }, [entry(2)]);
    store.down = false;
    await m.delete(KEY);
    expect(m.backlog).toBe(0);
    expect(await m.load(KEY)).toBeNull();
  });

  it('refuses to delete over a backend without delete, and drops nothing', async () => {
    const { inner } = backend();
    // A third-party store may leave delete out; the mirror must not pretend the transcript is gone.
    const m = mirror({
      append: (key, entries) => inner.append(key, entries),
      load: (key) => inner.load(key),
    });
    await m.append(KEY, [entry(1)]);
    await m.drain();
    await m.append(KEY, [entry(2)]);
    await expect(m.delete(KEY)).rejects.toThrow('the backend cannot delete transcripts');
    expect((await m.load(KEY))!.map((e) => e.n)).toEqual([1, 2]);
  });

  it('reports a backend that hangs as delayed, and ships each entry once when it answers late', async () => {
    const store = backend();
    // The first append hangs until released, then writes: a Redis stopped with SIGSTOP and continued.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const hanging: SessionStore = {
      append: async (key, entries) => {
        if (store.appendCalls++ === 0) await gate;
        await store.inner.append(key, entries);
      },
      load: (key) => store.inner.load(key),
    };
    const delayed: unknown[] = [];
    const m = mirror(hanging, { storeTimeoutMs: 50, onDelayed: (_key, err) => delayed.push(err) });
    // Without uuids: only the mirror's look before a retry keeps these from being stored twice.
    await m.append(KEY, [{ type: 'ai-title', aiTitle: 'one' }]);
    await until(() => delayed.length > 0, 'the hang to be reported');
    expect(isBerthError(delayed[0], 'store_unavailable')).toBe(true);
    expect(String(delayed[0])).toMatch(/no answer within 50 ms/);
    await m.append(KEY, [{ type: 'ai-title', aiTitle: 'two' }]);
    // Retries come every few ms; none may overtake the write still hanging, which may yet land.
    await new Promise((r) => setTimeout(r, 300));
    expect(m.delayed).toBe(true);
    expect(store.appendCalls).toBe(1);
    release();
    await m.drain();
    expect((await store.inner.load(KEY))!.map((e) => e.aiTitle)).toEqual(['one', 'two']);
  });

  it('drain gives up when its signal aborts', async () => {
    const store = backend();
    store.down = true;
    const m = mirror(store);
    await m.append(KEY, [entry(1)]);
    await expect(m.drain(AbortSignal.timeout(50))).rejects.toThrow();
  });
});

describe('DurableMirror: events and registry', () => {
  /** A SQLite event log and registry that the test can take down. */
  function stores() {
    const db = openSqliteDatabase(':memory:');
    cleanups.push(() => void db.close());
    const state = { down: false, failAfterWriteOnce: false };
    const log = new SqliteEventLog({ db });
    const registry = new SqliteRegistry({ db });
    const guard = <T>(op: () => Promise<T>): Promise<T> =>
      state.down ? Promise.reject(new Error('connection refused')) : op();
    const eventLog: EventLog = {
      append: async (key, events) => {
        await guard(() => log.append(key, events));
        if (state.failAfterWriteOnce) {
          state.failAfterWriteOnce = false;
          throw new Error('connection reset after the write');
        }
      },
      list: (key, o) => guard(() => log.list(key, o)),
      lastSeq: (key) => guard(() => log.lastSeq(key)),
      deleteSession: (key) => guard(() => log.deleteSession(key)),
    };
    const reg: SessionRegistry = {
      create: (r) => guard(() => registry.create(r)),
      get: (r) => guard(() => registry.get(r)),
      list: (t, p) => guard(() => registry.list(t, p)),
      update: (r, p) => guard(() => registry.update(r, p)),
      delete: (r) => guard(() => registry.delete(r)),
    };
    return { state, log, registry, eventLog, reg };
  }

  it('spools events while the log is down, reads them merged, and ships them in order', async () => {
    const s = stores();
    const m = mirror(backend().inner, { eventLog: s.eventLog, registry: s.reg });
    const events = m.eventLog;
    await events.append('acme/s1', [event(1), event(2)]);
    await m.drain();
    s.state.down = true;
    await events.append('acme/s1', [event(3)]);
    await events.append('acme/s1', [event(4), event(5)]);
    s.state.down = false;
    expect((await events.list('acme/s1', { after: 1, limit: 3 })).map((e) => e.seq)).toEqual([2, 3, 4]);
    expect(await events.lastSeq('acme/s1')).toBe(5);
    await m.drain();
    expect((await s.log.list('acme/s1', { after: 0, limit: 10 })).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('skips an event batch the log already holds and still ships the batches after it', async () => {
    const s = stores();
    s.state.failAfterWriteOnce = true;
    const m = mirror(backend().inner, { eventLog: s.eventLog, registry: s.reg });
    await m.eventLog.append('acme/s1', [event(1)]);
    await m.eventLog.append('acme/s1', [event(2)]);
    await m.drain();
    expect((await s.log.list('acme/s1', { after: 0, limit: 10 })).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('keeps an event batch spooled when the log fails with internal, and ships it later', async () => {
    const s = stores();
    let failures = 2;
    const flaky: EventLog = {
      ...s.eventLog,
      append: (key, events) =>
        failures-- > 0
          ? Promise.reject(new BerthError('internal', 'a bug in the adapter, nothing written'))
          : s.log.append(key, events),
    };
    const m = mirror(backend().inner, { eventLog: flaky, registry: s.reg });
    await m.eventLog.append('acme/s1', [event(1), event(2)]);
    await m.eventLog.append('acme/s1', [event(3)]);
    await m.drain();
    expect((await s.log.list('acme/s1', { after: 0, limit: 10 })).map((e) => e.seq)).toEqual([1, 2, 3]);
  });

  it('on a seq conflict ships the events of the batch that the log lacks', async () => {
    const s = stores();
    // Seq 1 reached the log but the host died before it heard back (and before event 2 went out).
    await s.log.append('acme/s1', [event(1)]);
    const m = mirror(backend().inner, { eventLog: s.eventLog, registry: s.reg });
    await m.eventLog.append('acme/s1', [event(1), event(2)]);
    await m.drain();
    expect(await s.log.list('acme/s1', { after: 0, limit: 10 })).toEqual([event(1), event(2)]);
  });

  it('spools registry updates, applies them to reads, and ships them merged', async () => {
    const s = stores();
    const m = mirror(backend().inner, { eventLog: s.eventLog, registry: s.reg });
    const reg = m.registry;
    await reg.create(record('s1'));
    s.state.down = true;
    await reg.update({ tenant: 'acme', id: 's1' }, { status: 'running' });
    await reg.update({ tenant: 'acme', id: 's1' }, { turns: 3 });
    s.state.down = false;
    expect(await reg.get({ tenant: 'acme', id: 's1' })).toMatchObject({ status: 'running', turns: 3 });
    await m.drain();
    expect(await s.registry.get({ tenant: 'acme', id: 's1' })).toMatchObject({ status: 'running', turns: 3 });
    await reg.delete({ tenant: 'acme', id: 's1' });
    expect(await reg.get({ tenant: 'acme', id: 's1' })).toBeUndefined();
  });
});

runSessionStoreConformance(
  'DurableMirror over SQLite',
  async () => {
    const spoolDir = await mkdtemp(path.join(tmpdir(), 'berth-mirror-conf-'));
    const db = openSqliteDatabase(':memory:');
    const m = new DurableMirror({
      backend: new SqliteSessionStore({ db }),
      spoolPath: path.join(spoolDir, 'spool.db'),
    });
    return {
      store: m,
      cleanup: async () => {
        await m.close();
        db.close();
        await rm(spoolDir, { recursive: true, force: true });
      },
    };
  },
  {
    // Berth's own adapter has every optional method: one it lost fails its cases instead of skipping them.
    requireAll: true,
    // Three hosts, each with its own spool, in front of one backend.
    sharedFactory: async () => {
      const spoolDir = await mkdtemp(path.join(tmpdir(), 'berth-mirror-conf-'));
      const file = path.join(spoolDir, 'backend.db');
      const dbs = [0, 1, 2].map(() => openSqliteDatabase(file));
      const mirrors = dbs.map(
        (db, i) =>
          new DurableMirror({
            backend: new SqliteSessionStore({ db }),
            spoolPath: path.join(spoolDir, `spool-${i}.db`),
          }),
      );
      // A host reads its own writes at once and other hosts' once they have shipped: each read waits
      // for every spool to drain, as a reader on another host would after the writers' shippers ran.
      const shipped = () => Promise.all(mirrors.map((m) => m.drain()));
      const stores = mirrors.map((m): SessionStore => ({
        append: (key, entries) => m.append(key, entries),
        load: async (key) => (await shipped(), m.load(key)),
        listSessions: async (projectKey) => (await shipped(), m.listSessions(projectKey)),
        listSessionSummaries: async (projectKey) => (await shipped(), m.listSessionSummaries(projectKey)),
        delete: (key) => m.delete(key),
        listSubkeys: async (key) => (await shipped(), m.listSubkeys(key)),
      }));
      return {
        stores,
        cleanup: async () => {
          for (const m of mirrors) await m.close();
          for (const db of dbs) db.close();
          await rm(spoolDir, { recursive: true, force: true });
        },
      };
    },
  },
);
