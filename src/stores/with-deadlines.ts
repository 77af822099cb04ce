/**
 * Deadlines around the three stores a `--store URL` opens, whatever their adapter: every call of the
 * registry, the event log and the transcript store rejects with `store_unavailable` when it has not
 * answered within `timeoutMs`, and the adapter gets the deadline as its `signal` (the transcript store's
 * SDK interface takes none, so there the deadline only stops the waiting).
 *
 * A write that passed its deadline may still land (a Redis stopped with SIGSTOP runs the commands queued
 * on its socket when it is continued). So a wrapped store remembers such writes, and every later call waits
 * for them first (see `AbandonedWrites`): a retry never overtakes the write it repeats, and the read a
 * retry makes first (the durable mirror's, to skip what landed) sees it.
 *
 * Wrapping is idempotent: a store wrapped once is returned as it is.
 */
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { AbandonedWrites } from './deadline.js';
import type { EventLog, SessionRegistry, Stores } from './types.js';

const WRAPPED = new WeakSet<object>();

function mark<T extends object>(store: T): T {
  WRAPPED.add(store);
  return store;
}

/** `registry` with a deadline of `timeoutMs` on every call. */
export function registryWithDeadlines(registry: SessionRegistry, timeoutMs: number): SessionRegistry {
  if (WRAPPED.has(registry)) return registry;
  const calls = new AbandonedWrites();
  return mark({
    create: (record, options) =>
      calls.write('store create session', timeoutMs, options?.signal, (signal) =>
        registry.create(record, { signal }),
      ),
    get: (ref, options) =>
      calls.read('store get session', timeoutMs, options?.signal, (signal) => registry.get(ref, { signal })),
    list: (tenant, options) =>
      calls.read('store list sessions', timeoutMs, options.signal, (signal) =>
        registry.list(tenant, { ...options, signal }),
      ),
    update: (ref, patch, options) =>
      calls.write('store update session', timeoutMs, options?.signal, (signal) =>
        registry.update(ref, patch, { signal }),
      ),
    delete: (ref, options) =>
      calls.write('store delete session', timeoutMs, options?.signal, (signal) =>
        registry.delete(ref, { signal }),
      ),
  });
}

/** `log` with a deadline of `timeoutMs` on every call. */
export function eventLogWithDeadlines(log: EventLog, timeoutMs: number): EventLog {
  if (WRAPPED.has(log)) return log;
  const calls = new AbandonedWrites();
  return mark({
    append: (key, events, options) =>
      calls.write('store append events', timeoutMs, options?.signal, (signal) =>
        log.append(key, events, { signal }),
      ),
    list: (key, options) =>
      calls.read('store list events', timeoutMs, options.signal, (signal) =>
        log.list(key, { ...options, signal }),
      ),
    lastSeq: (key, options) =>
      calls.read('store read last event seq', timeoutMs, options?.signal, (signal) =>
        log.lastSeq(key, { signal }),
      ),
    deleteSession: (key, options) =>
      calls.write('store delete events', timeoutMs, options?.signal, (signal) =>
        log.deleteSession(key, { signal }),
      ),
  });
}

/** `store` with a deadline of `timeoutMs` on every call; optional methods stay optional. */
export function sessionStoreWithDeadlines(store: SessionStore, timeoutMs: number): SessionStore {
  if (WRAPPED.has(store)) return store;
  const calls = new AbandonedWrites();
  const wrapped: SessionStore = {
    append: (key: SessionKey, entries: SessionStoreEntry[]) =>
      calls.write('store append transcript entries', timeoutMs, undefined, () => store.append(key, entries)),
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

/** `stores` with every call of its three stores under a deadline of `timeoutMs`. */
export function storesWithDeadlines(stores: Stores, timeoutMs: number): Stores {
  return {
    ...stores,
    transcriptStore: sessionStoreWithDeadlines(stores.transcriptStore, timeoutMs),
    registry: registryWithDeadlines(stores.registry, timeoutMs),
    eventLog: eventLogWithDeadlines(stores.eventLog, timeoutMs),
    close: () => stores.close(),
    ...(stores.destroy && { destroy: stores.destroy.bind(stores) }),
  };
}
