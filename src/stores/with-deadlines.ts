/**
 * Deadlines around the stores a `--store URL` opens, whatever their adapter: every call of the registry,
 * the event log, the catalog, the transcript store and the coordination (when the store has it) rejects with
 * `store_unavailable` when it has not answered within `timeoutMs`, and the adapter gets the deadline as its
 * `signal` (the transcript store's SDK interface takes none, so there the deadline only stops the waiting
 * unless the store takes Berth's options too). Every other option, `fence` above all, passes through as
 * the caller gave it: a fenced write that lost its fence would land where it must be refused.
 *
 * A write that passed its deadline may still land (a Redis stopped with SIGSTOP runs the commands queued
 * on its socket when it is continued). So a wrapped store remembers such writes, and every later call waits
 * for them first (see `AbandonedWrites`): a retry never overtakes the write it repeats, and the read a
 * retry makes first (the durable mirror's, to skip what landed) sees it.
 *
 * Wrapping is idempotent: a store wrapped once is returned as it is.
 */
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import type { Catalog } from './catalog.js';
import type { Coordination, FencedSessionStore } from './coordination.js';
import { AbandonedWrites, type StoreObserver } from './deadline.js';
import type { CompleteSessionStore, EventLog, SessionRegistry, StoreCallOptions, Stores } from './types.js';

const WRAPPED = new WeakSet<object>();

function mark<T extends object>(store: T): T {
  WRAPPED.add(store);
  return store;
}

/** The caller's options with the deadline's signal in place of the caller's (which the deadline follows). */
function under(options: StoreCallOptions | undefined, signal: AbortSignal): StoreCallOptions {
  return { ...options, signal };
}

/** `registry` with a deadline of `timeoutMs` on every call. */
export function registryWithDeadlines(
  registry: SessionRegistry,
  timeoutMs: number,
  observe?: StoreObserver,
): SessionRegistry {
  if (WRAPPED.has(registry)) return registry;
  const calls = new AbandonedWrites(observe);
  return mark({
    create: (record, options) =>
      calls.write('store create session', timeoutMs, options?.signal, (signal) =>
        registry.create(record, under(options, signal)),
      ),
    get: (ref, options) =>
      calls.read('store get session', timeoutMs, options?.signal, (signal) =>
        registry.get(ref, under(options, signal)),
      ),
    list: (tenant, options) =>
      calls.read('store list sessions', timeoutMs, options.signal, (signal) =>
        registry.list(tenant, { ...options, signal }),
      ),
    update: (ref, patch, options) =>
      calls.write('store update session', timeoutMs, options?.signal, (signal) =>
        registry.update(ref, patch, under(options, signal)),
      ),
    delete: (ref, options) =>
      calls.write('store delete session', timeoutMs, options?.signal, (signal) =>
        registry.delete(ref, under(options, signal)),
      ),
  });
}

/** `catalog` with a deadline of `timeoutMs` on every call. */
export function catalogWithDeadlines(catalog: Catalog, timeoutMs: number, observe?: StoreObserver): Catalog {
  if (WRAPPED.has(catalog)) return catalog;
  const calls = new AbandonedWrites(observe);
  return mark({
    create: (entry, options) =>
      calls.write('store create catalog entry', timeoutMs, options?.signal, (signal) =>
        catalog.create(entry, under(options, signal)),
      ),
    get: (ref, options) =>
      calls.read('store get catalog entry', timeoutMs, options?.signal, (signal) =>
        catalog.get(ref, under(options, signal)),
      ),
    replace: (ref, doc, expectRevision, options) =>
      calls.write('store replace catalog entry', timeoutMs, options?.signal, (signal) =>
        catalog.replace(ref, doc, expectRevision, under(options, signal)),
      ),
    list: (tenant, kind, options) =>
      calls.read('store list catalog entries', timeoutMs, options.signal, (signal) =>
        catalog.list(tenant, kind, { ...options, signal }),
      ),
    delete: (ref, options) =>
      calls.write('store delete catalog entry', timeoutMs, options?.signal, (signal) =>
        catalog.delete(ref, under(options, signal)),
      ),
  });
}

/** `log` with a deadline of `timeoutMs` on every call. */
export function eventLogWithDeadlines(log: EventLog, timeoutMs: number, observe?: StoreObserver): EventLog {
  if (WRAPPED.has(log)) return log;
  const calls = new AbandonedWrites(observe);
  return mark({
    append: (key, events, options) =>
      calls.write('store append events', timeoutMs, options?.signal, (signal) =>
        log.append(key, events, under(options, signal)),
      ),
    list: (key, options) =>
      calls.read('store list events', timeoutMs, options.signal, (signal) =>
        log.list(key, { ...options, signal }),
      ),
    lastSeq: (key, options) =>
      calls.read('store read last event seq', timeoutMs, options?.signal, (signal) =>
        log.lastSeq(key, under(options, signal)),
      ),
    deleteSession: (key, options) =>
      calls.write('store delete events', timeoutMs, options?.signal, (signal) =>
        log.deleteSession(key, under(options, signal)),
      ),
  });
}

/**
 * `store` with a deadline of `timeoutMs` on every call; optional methods stay optional (and a complete
 * store stays complete). `append` passes Berth's options on (a store that only implements the SDK's
 * interface ignores them).
 */
export function sessionStoreWithDeadlines(
  store: CompleteSessionStore,
  timeoutMs: number,
  observe?: StoreObserver,
): FencedSessionStore & CompleteSessionStore;
export function sessionStoreWithDeadlines(
  store: SessionStore,
  timeoutMs: number,
  observe?: StoreObserver,
): FencedSessionStore;
export function sessionStoreWithDeadlines(
  store: SessionStore,
  timeoutMs: number,
  observe?: StoreObserver,
): FencedSessionStore {
  if (WRAPPED.has(store)) return store;
  const calls = new AbandonedWrites(observe);
  // The SDK's interface has no third parameter; a store without one ignores the options.
  const fenced: FencedSessionStore = store;
  const wrapped: FencedSessionStore = {
    append: (key: SessionKey, entries: SessionStoreEntry[], options?: StoreCallOptions) =>
      calls.write('store append transcript entries', timeoutMs, options?.signal, (signal) =>
        fenced.append(key, entries, under(options, signal)),
      ),
    load: (key) => calls.read('store load transcript', timeoutMs, undefined, () => store.load(key)),
  };
  // Only what the store has: the SDK and the conformance cases look for the optional methods.
  if (store.listSessions) {
    wrapped.listSessions = (projectKey) =>
      calls.read('store list sessions', timeoutMs, undefined, () => store.listSessions!(projectKey));
  }
  if (store.listSessionSummaries) {
    wrapped.listSessionSummaries = (projectKey) =>
      calls.read('store list session summaries', timeoutMs, undefined, () =>
        store.listSessionSummaries!(projectKey),
      );
  }
  if (store.delete) {
    wrapped.delete = (key) =>
      calls.write('store delete transcript', timeoutMs, undefined, () => store.delete!(key));
  }
  if (store.listSubkeys) {
    wrapped.listSubkeys = (key) =>
      calls.read('store list subkeys', timeoutMs, undefined, () => store.listSubkeys!(key));
  }
  return mark(wrapped);
}

/**
 * `coordination` with a deadline of `timeoutMs` on every call. Everything that changes a row is a write
 * (an acquire that timed out may still have taken the lease), so later calls wait for it as they do for
 * the other stores' writes.
 */
export function coordinationWithDeadlines(
  coordination: Coordination,
  timeoutMs: number,
  observe?: StoreObserver,
): Coordination {
  if (WRAPPED.has(coordination)) return coordination;
  const calls = new AbandonedWrites(observe);
  const c = coordination;
  return mark({
    heartbeat: (host, ttlMs, options) =>
      calls.write('store heartbeat', timeoutMs, options?.signal, (signal) =>
        c.heartbeat(host, ttlMs, under(options, signal)),
      ),
    hosts: (options) =>
      calls.read('store list hosts', timeoutMs, options?.signal, (signal) => c.hosts(under(options, signal))),
    removeHost: (id, options) =>
      calls.write('store remove host', timeoutMs, options?.signal, (signal) =>
        c.removeHost(id, under(options, signal)),
      ),
    acquire: (key, hostId, ttlMs, options) =>
      calls.write('store acquire lease', timeoutMs, options?.signal, (signal) =>
        c.acquire(key, hostId, ttlMs, under(options, signal)),
      ),
    renew: (hostId, leases, ttlMs, options) =>
      calls.write('store renew leases', timeoutMs, options?.signal, (signal) =>
        c.renew(hostId, leases, ttlMs, under(options, signal)),
      ),
    release: (key, hostId, token, options) =>
      calls.write('store release lease', timeoutMs, options?.signal, (signal) =>
        c.release(key, hostId, token, under(options, signal)),
      ),
    lease: (key, options) =>
      calls.read('store read lease', timeoutMs, options?.signal, (signal) =>
        c.lease(key, under(options, signal)),
      ),
    leases: (keys, options) =>
      calls.read('store read leases', timeoutMs, options?.signal, (signal) =>
        c.leases(keys, under(options, signal)),
      ),
    deleteLease: (key, options) =>
      calls.write('store delete lease', timeoutMs, options?.signal, (signal) =>
        c.deleteLease(key, under(options, signal)),
      ),
    keepSuperseded: (write, options) =>
      calls.write('store keep superseded write', timeoutMs, options?.signal, (signal) =>
        c.keepSuperseded(write, under(options, signal)),
      ),
    superseded: (key, options) =>
      calls.read('store list superseded writes', timeoutMs, options?.signal, (signal) =>
        c.superseded(key, under(options, signal)),
      ),
    deleteSuperseded: (key, options) =>
      calls.write('store delete superseded writes', timeoutMs, options?.signal, (signal) =>
        c.deleteSuperseded(key, under(options, signal)),
      ),
  });
}

/** `stores` with every call of its stores under a deadline of `timeoutMs`. */
export function storesWithDeadlines(stores: Stores, timeoutMs: number, observe?: StoreObserver): Stores {
  return {
    ...stores,
    transcriptStore: sessionStoreWithDeadlines(stores.transcriptStore, timeoutMs, observe),
    registry: registryWithDeadlines(stores.registry, timeoutMs, observe),
    eventLog: eventLogWithDeadlines(stores.eventLog, timeoutMs, observe),
    catalog: catalogWithDeadlines(stores.catalog, timeoutMs, observe),
    ...(stores.coordination && {
      coordination: coordinationWithDeadlines(stores.coordination, timeoutMs, observe),
    }),
    close: () => stores.close(),
    ...(stores.destroy && { destroy: stores.destroy.bind(stores) }),
  };
}
