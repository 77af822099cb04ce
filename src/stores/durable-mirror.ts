/**
 * Host writes that lose nothing when the store is down.
 *
 * The SDK's own mirror retries a failed `append` three times and then drops the batch. Berth puts this in
 * front of a networked store instead: every write a host makes (transcript batches from the SDK, session
 * events, registry updates) lands in a spool on the host's disk and returns, and one shipper drains the
 * spool to the store in order, retrying with backoff for as long as it takes. Reads on this host merge
 * what is still spooled, so a host reads its own writes during an outage, and a host restarted on the
 * same data dir ships what its spool still holds.
 *
 * Shipping is idempotent: transcript entries carry uuids that every store skips when it holds them, an
 * event batch refused with `event_seq_conflict` is checked against the log and only what it lacks is
 * appended (event-log appends are all or nothing; no other code counts as "already stored"), and a
 * registry patch can be applied twice. Every store call has a deadline (`storeTimeoutMs`): a store that
 * hangs is an outage like one that refuses, reported the same way. So a write that reached the store just before the host died,
 * and is still spooled, is harmless to ship again.
 *
 * Spool layout (SQLite, WAL): `ops(seq, kind, scope, name, subpath, payload)`, one row per write, `seq`
 * AUTOINCREMENT (the shipping order); a row is deleted only after the store accepted it.
 * - `transcript`: scope = projectKey, name = sessionId, subpath (`''` for the main transcript),
 *   payload = the entries.
 * - `events`: scope = the event log key, payload = the events.
 * - `registry`: scope = tenant, name = session id, payload = the patch.
 * Creating and deleting sessions are not spooled: they go to the store at once and fail while it is down.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type {
  SessionKey,
  SessionStore,
  SessionStoreEntry,
  SessionSummaryEntry,
} from '@anthropic-ai/claude-agent-sdk';
import type Database from 'better-sqlite3';
import { BerthError } from '../errors.js';
import { checkAborted } from './abort.js';
import { canonicalJson } from './canonical-json.js';
import { DEFAULT_STORE_TIMEOUT_MS } from './deadline.js';
import { appendEventsOnce } from './event-append.js';
import type { StoredEvent } from '../session/events.js';
import { MAIN, openSpool, rowFence, sameTarget, spoolFigures, spoolWrite, transcriptKey } from './spool.js';
import type { Coordination, FencedSessionStore } from './coordination.js';
import { isBerthError } from '../errors.js';
import type { Kind, OpRow, SpoolStatements } from './spool.js';
import type { EventLog, Fence, ListPage, SessionRecord, SessionRef, SessionRegistry } from './types.js';
import { eventLogWithDeadlines, registryWithDeadlines, sessionStoreWithDeadlines } from './with-deadlines.js';

export interface DurableMirrorOptions {
  /** Where transcript entries end up; without `delete`, {@link DurableMirror.delete} refuses. */
  backend: SessionStore;
  /** Where session events end up; without it, {@link DurableMirror.eventLog} is unavailable. */
  eventLog?: EventLog;
  /** Where registry updates end up; without it, {@link DurableMirror.registry} is unavailable. */
  registry?: SessionRegistry;
  /** The spool's SQLite file (created with its directory). */
  spoolPath: string;
  /** First retry delay after a failed shipment; doubles up to `maxBackoffMs`. @default 100 */
  minBackoffMs?: number;
  /** @default 5000 */
  maxBackoffMs?: number;
  /**
   * Called once per outage for each session whose transcript entries wait in the spool, so the session's
   * clients can be told that mirroring is delayed.
   */
  onDelayed?: (key: { projectKey: string; sessionId: string }, error: unknown) => void;
  /** Called when the store accepts writes again after an outage, with the backlog left to ship. */
  onRecovered?: (backlog: number) => void;
  /**
   * The deadline of every store call (`--store-timeout`): a shipment the store has not answered by then
   * fails like a refused one, so a hanging store is reported (`onDelayed`) instead of stalling the
   * shipper silently. A shipment abandoned at its deadline may still land; the next call to that store
   * waits for it first (see `with-deadlines.ts`), and the retry looks before it ships again.
   * @default 10000
   */
  storeTimeoutMs?: number;
  /** Multi-host mode: the fence each write is spooled with (see host/session-leases.ts). */
  fenceFor?: (kind: Kind, scope: string, name: string) => Fence | undefined;
  /**
   * Multi-host mode: where a write the store refused for a lost lease goes (`keepSuperseded`: beside the
   * session, never into it, where the new holder's view wins), and who is told that the lease is lost.
   */
  superseded?: { coordination: Coordination; hostId: string; onLost: (lease: string, token: number) => void };
}

/** How many spooled rows one shipping round reads. */
const SHIP_ROWS = 200;

export class DurableMirror implements Required<SessionStore> {
  private readonly db: Database.Database;
  private readonly sql: SpoolStatements;
  private readonly backend: FencedSessionStore;
  private readonly log: EventLog | undefined;
  private readonly records: SessionRegistry | undefined;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private wake: (() => void) | undefined;
  private readonly stop = new AbortController();
  private readonly shipper: Promise<void>;
  /** Set while the store is failing: the sessions already told about this outage. */
  private outage: { notified: Set<string>; error: unknown } | undefined;
  private idleWaiters: Array<() => void> = [];
  private closing: Promise<void> | undefined;
  private lock: Promise<void> = Promise.resolve();
  /** Set after a failed shipment: the store may hold writes whose answer never came back. */
  private suspect = false;

  constructor(private readonly options: DurableMirrorOptions) {
    const timeoutMs = options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    this.backend = sessionStoreWithDeadlines(options.backend, timeoutMs);
    this.log = options.eventLog && eventLogWithDeadlines(options.eventLog, timeoutMs);
    this.records = options.registry && registryWithDeadlines(options.registry, timeoutMs);
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    ({ db: this.db, sql: this.sql } = openSpool(options.spoolPath));
    this.shipper = this.ship();
  }

  /** Writes waiting to be shipped. */
  get backlog(): number {
    return this.sql.count.get()!.n;
  }

  /** Spooled entries (transcript entries, events, registry writes) and the oldest one's age, for metrics. */
  get backlogFigures(): { entries: number; oldestSeconds: number } {
    return spoolFigures(this.sql);
  }

  /** True while the store is refusing writes. */
  get delayed(): boolean {
    return this.outage !== undefined;
  }

  // --- transcripts (the SDK's SessionStore) ---

  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    try {
      this.spool('transcript', key.projectKey, key.sessionId, key.subpath ?? MAIN, entries);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (this.outage) this.notifyDelayed(key.projectKey, key.sessionId);
    return Promise.resolve();
  }

  /** The store's entries followed by those still spooled for the key (skipping uuids already loaded). */
  async load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    // Holding the lock keeps the shipper from moving rows between the two reads, which would show
    // entries without a uuid twice (in both) or not at all (in neither).
    const { spooled, stored } = await this.exclusive(async () => ({
      spooled: this.sql.byTarget.all('transcript', key.projectKey, key.sessionId, key.subpath ?? MAIN),
      stored: await this.backend.load(key),
    }));
    if (spooled.length === 0) return stored;
    const entries = stored ?? [];
    const seen = new Set(entries.map((e) => e.uuid).filter((u): u is string => typeof u === 'string'));
    // A batch that reached the store just before a crash can still be spooled: uuid dedup covers it.
    for (const row of spooled) {
      for (const entry of JSON.parse(row.payload) as SessionStoreEntry[]) {
        if (typeof entry.uuid === 'string') {
          if (seen.has(entry.uuid)) continue;
          seen.add(entry.uuid);
        }
        entries.push(entry);
      }
    }
    return entries;
  }

  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    if (!this.backend.listSessions) throw new Error('the backend store cannot list sessions');
    await this.shipped(projectKey);
    return this.backend.listSessions(projectKey);
  }

  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    if (!this.backend.listSessionSummaries) throw new Error('the backend store keeps no session summaries');
    await this.shipped(projectKey);
    return this.backend.listSessionSummaries(projectKey);
  }

  /** Under the lock, so that no batch being shipped lands after it. Refuses if the backend cannot delete. */
  delete(key: SessionKey): Promise<void> {
    const remove = this.backend.delete?.bind(this.backend);
    if (!remove)
      return Promise.reject(new BerthError('invalid_config', 'the backend cannot delete transcripts'));
    return this.exclusive(async () => {
      if (key.subpath === undefined) this.sql.dropSession.run('transcript', key.projectKey, key.sessionId);
      else this.sql.dropTarget.run('transcript', key.projectKey, key.sessionId, key.subpath);
      await remove(key);
    });
  }

  async listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    const stored = (await this.backend.listSubkeys?.(key)) ?? [];
    const spooled = this.sql.subpaths.all(key.projectKey, key.sessionId).map((r) => r.subpath);
    return [...new Set([...stored, ...spooled])];
  }

  // --- session events ---

  /** An {@link EventLog} whose appends are spooled and whose reads include what is spooled. */
  get eventLog(): EventLog {
    const log = this.log;
    if (!log) throw new Error('DurableMirror: no eventLog was given');
    return {
      append: (key, events, options) =>
        this.local('spool events', options?.signal, () => {
          if (events.length > 0) this.spool('events', key, MAIN, MAIN, events);
        }),
      list: async (key, { after, limit, signal }) => {
        const { spooled, stored } = await this.exclusive(async () => ({
          spooled: this.sql.byTarget.all('events', key, MAIN, MAIN),
          stored: await log.list(key, { after, limit, signal }),
        }));
        if (spooled.length === 0) return stored;
        const bySeq = new Map(stored.map((e) => [e.seq, e]));
        for (const row of spooled) {
          for (const event of JSON.parse(row.payload) as StoredEvent[]) {
            if (event.seq > after && !bySeq.has(event.seq)) bySeq.set(event.seq, event);
          }
        }
        return [...bySeq.values()].sort((a, b) => a.seq - b.seq).slice(0, Math.max(0, limit));
      },
      lastSeq: async (key, options) => {
        const spooled = this.sql.byTarget.all('events', key, MAIN, MAIN);
        const last = spooled.flatMap((r) => (JSON.parse(r.payload) as StoredEvent[]).map((e) => e.seq));
        return Math.max(await log.lastSeq(key, options), ...last);
      },
      deleteSession: (key, options) =>
        this.exclusive(async () => {
          checkAborted(options?.signal, 'delete events');
          this.sql.dropTarget.run('events', key, MAIN, MAIN);
          await log.deleteSession(key, options);
        }),
    };
  }

  // --- the session registry ---

  /** A {@link SessionRegistry} whose updates are spooled and whose reads apply what is spooled. */
  get registry(): SessionRegistry {
    const registry = this.records;
    if (!registry) throw new Error('DurableMirror: no registry was given');
    const withPatches = (record: SessionRecord): SessionRecord => {
      let merged = record;
      for (const row of this.sql.byTarget.all('registry', record.tenant, record.id, MAIN)) {
        merged = { ...merged, ...(JSON.parse(row.payload) as Partial<SessionRecord>) };
      }
      return merged;
    };
    return {
      create: (record, options) => registry.create(record, options),
      get: async (ref, options) => {
        const record = await this.exclusive(() => registry.get(ref, options));
        return record && withPatches(record);
      },
      list: async (tenant, page): Promise<ListPage<SessionRecord>> => {
        const result = await this.exclusive(() => registry.list(tenant, page));
        return { ...result, data: result.data.map(withPatches) };
      },
      update: (ref: SessionRef, patch, options) =>
        this.local('spool a session update', options?.signal, () => {
          this.spool('registry', ref.tenant, ref.id, MAIN, { ...patch, updatedAt: Date.now() });
        }),
      delete: (ref, options) =>
        this.exclusive(async () => {
          checkAborted(options?.signal, 'delete session');
          this.sql.dropTarget.run('registry', ref.tenant, ref.id, MAIN);
          await registry.delete(ref, options);
        }),
    };
  }

  // --- shipping ---

  /** Resolves when the spool is empty, or rejects when `signal` aborts first. */
  async drain(signal?: AbortSignal): Promise<void> {
    while (this.backlog > 0) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = (): void => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.idleWaiters.push(done);
        signal?.addEventListener('abort', done, { once: true });
        this.wake?.();
      });
    }
  }

  /**
   * Stops shipping and closes the spool (idempotent). What is still spooled stays on disk and is shipped
   * by the next mirror opened on the same file.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stop.abort();
      this.wake?.();
      await this.shipper;
      for (const waiter of this.idleWaiters.splice(0)) waiter();
      this.db.close();
    })();
    return this.closing;
  }

  /** A spool-only call: synchronous, so its signal is honoured once, before it runs. */
  private local(what: string, signal: AbortSignal | undefined, work: () => void): Promise<void> {
    try {
      checkAborted(signal, what);
      work();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private spool(kind: Kind, scope: string, name: string, subpath: string, payload: unknown): void {
    const fence = this.options.fenceFor?.(kind, scope, name);
    spoolWrite(this.sql, { kind, scope, name, subpath }, payload, fence);
    this.wake?.();
  }

  /**
   * Waits until no transcript of the project is spooled, so that listings (read from the store, where
   * mtimes and summaries are kept) include this host's writes. During an outage it does not wait: the
   * store call that follows fails or answers with what it has.
   */
  private async shipped(projectKey: string): Promise<void> {
    while (
      !this.outage &&
      this.sql.countScope.get('transcript', projectKey)!.n > 0 &&
      !this.stop.signal.aborted
    ) {
      await new Promise<void>((resolve) => {
        this.idleWaiters.push(resolve);
        this.wake?.();
      });
    }
  }

  /** Runs `task` while no other `exclusive` task runs (shipping a group, or a read that merges the spool). */
  private exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.lock.then(task);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private notifyDelayed(projectKey: string, sessionId: string): void {
    const outage = this.outage;
    if (!outage) return;
    const id = JSON.stringify([projectKey, sessionId]);
    if (outage.notified.has(id)) return;
    outage.notified.add(id);
    try {
      this.options.onDelayed?.({ projectKey, sessionId }, outage.error);
    } catch {
      // a listener's failure must not stop shipping
    }
  }

  /**
   * Sends one group of consecutive rows with the same target and fence to the store. Rows refused for a
   * lost lease are kept as superseded writes instead (see {@link supersede}).
   */
  private async shipGroup(group: readonly OpRow[]): Promise<void> {
    // A delete may have run since the rows were read: its rows are gone and must not be shipped.
    if (!this.sql.exists.get(group[0]!.seq)) return;
    const fence = rowFence(group[0]!);
    try {
      await this.shipFenced(group, fence);
    } catch (err) {
      if (!fence || !this.options.superseded || !isBerthError(err, 'lease_lost')) throw err;
      await this.supersede(group, fence);
    }
  }

  /**
   * A host that lost a session's lease cannot write into it: the rows it still holds go beside the
   * session (idempotent on this host's id and the row's seq, so a crash between the two steps stores a
   * row once) and leave the spool; the host is told, so that it stops running the session.
   */
  private async supersede(group: readonly OpRow[], fence: Fence): Promise<void> {
    const { coordination, hostId, onLost } = this.options.superseded!;
    for (const row of group) {
      if (!this.sql.exists.get(row.seq)) continue;
      await coordination.keepSuperseded({
        key: fence.lease,
        hostId,
        token: fence.token,
        id: row.seq,
        kind: row.kind,
        subpath: row.subpath,
        payload: JSON.parse(row.payload) as unknown,
        keptAt: Date.now(),
      });
      this.sql.deleteRow.run(row.seq);
    }
    onLost(fence.lease, fence.token);
  }

  private async shipFenced(group: readonly OpRow[], fence: Fence | undefined): Promise<void> {
    const first = group[0]!;
    const last = group.at(-1)!;
    const options = fence ? { fence } : {};
    switch (first.kind) {
      case 'transcript': {
        const key = transcriptKey(first);
        const batches = group.map((r) => JSON.parse(r.payload) as SessionStoreEntry[]);
        // After a failure the store may hold a batch whose answer was lost. Entries with a uuid would be
        // skipped, but entries without one would be stored twice: so look first, and ship only the
        // batches the store does not end with.
        const skip = this.suspect ? shippedPrefix(batches, (await this.backend.load(key)) ?? []) : 0;
        const entries = batches.slice(skip).flat();
        if (entries.length > 0) await this.backend.append(key, entries, options);
        break;
      }
      case 'events':
        // One call per row: a row shipped before a crash conflicts (its seqs are taken), and is deleted
        // only once the log is seen to hold every one of its events; any other failure keeps the row.
        for (const row of group) {
          await appendEventsOnce(this.log!, row.scope, JSON.parse(row.payload) as StoredEvent[], options);
          this.sql.deleteRow.run(row.seq);
        }
        return;
      case 'registry': {
        const patch = Object.assign(
          {},
          ...group.map((r) => JSON.parse(r.payload) as object),
        ) as Partial<SessionRecord>;
        await this.records!.update({ tenant: first.scope, id: first.name }, patch, options);
        break;
      }
    }
    this.sql.deleteUpTo.run(first.kind, first.scope, first.name, first.subpath, last.seq);
  }

  /** The shipper: oldest rows first, consecutive rows of one target in one store call. */
  private async ship(): Promise<void> {
    let backoff = this.minBackoffMs;
    while (!this.stop.signal.aborted) {
      const rows = this.sql.oldest.all(SHIP_ROWS);
      if (rows.length === 0) {
        for (const waiter of this.idleWaiters.splice(0)) waiter();
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      try {
        for (let i = 0; i < rows.length && !this.stop.signal.aborted;) {
          let j = i + 1;
          while (j < rows.length && sameTarget(rows[i]!, rows[j]!)) j++;
          const group = rows.slice(i, j);
          await this.exclusive(() => this.shipGroup(group));
          i = j;
        }
        if (this.outage) {
          this.outage = undefined;
          this.options.onRecovered?.(this.backlog);
        }
        this.suspect = false;
        backoff = this.minBackoffMs;
      } catch (err) {
        this.suspect = true;
        if (!this.outage) {
          this.outage = { notified: new Set(), error: err };
          for (const row of this.sql.pendingSessions.all()) this.notifyDelayed(row.scope, row.name);
        } else {
          this.outage.error = err;
        }
        // Each waiting drain() gets to re-check its signal; the shipper backs off and tries again.
        for (const waiter of this.idleWaiters.splice(0)) waiter();
        await sleep(backoff, undefined, { signal: this.stop.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, this.maxBackoffMs);
      }
    }
  }
}

/**
 * How many of the leading `batches` the store already holds: the largest k such that the stored
 * transcript ends with batches 0..k-1, in order. Appends are all-or-nothing in every adapter, so a batch
 * whose answer was lost is either wholly at the end of the store or not there at all.
 */
export function shippedPrefix(
  batches: readonly SessionStoreEntry[][],
  stored: readonly SessionStoreEntry[],
): number {
  const tail = stored.map(canonicalJson);
  for (let k = batches.length; k > 0; k--) {
    const head = batches.slice(0, k).flat().map(canonicalJson);
    if (head.length === 0 || head.length > tail.length) continue;
    const offset = tail.length - head.length;
    if (head.every((entry, i) => entry === tail[offset + i])) return k;
  }
  return 0;
}
