/**
 * The events of one session: numbers them, publishes them to live subscribers at once, and writes them
 * to the event log in order. Readers of history call `flush()` first so that what they read includes
 * everything already published.
 *
 * Invariant: an event leaves `pending` only once the log has stored it. A write that fails leaves its
 * events pending; the next `emit()` or `flush()` writes them again (with any newer ones, in seq order),
 * and until that succeeds every `flush()` rejects with the failure. There is no timer: a stream has no
 * close, and a retry after the session's deletion would bring its events back. A retry may find events
 * of the failed write stored after all (its answer was lost): `appendEventsOnce` stores only the rest.
 */
import { AsyncResource } from 'node:async_hooks';
import { newEventId } from '../ids.js';
import { appendEventsOnce } from '../stores/event-append.js';
import type { EventLog } from '../stores/types.js';
import type { NewEvent, StoredEvent } from './events.js';

export type EventListener = (event: StoredEvent) => void;

/** How many of a session's latest events are kept in memory for readers. */
const RECENT_EVENTS = 1000;

export class SessionEventStream {
  private seq: number;
  private readonly listeners = new Set<EventListener>();
  /** Emitted events the log does not hold yet, in seq order. */
  private readonly pending: StoredEvent[] = [];
  private emitScope: AsyncResource | undefined;
  /** The write in flight, which also writes what is emitted meanwhile; undefined when none runs. */
  private writing: Promise<void> | undefined;
  /** Set when a write failed: the events it held may be in the log after all. */
  private retrying = false;
  /** The latest events this process emitted, contiguous in seq. */
  private readonly recent: StoredEvent[] = [];
  private readonly endListeners = new Set<() => void>();
  private endedHere = false;

  constructor(
    /** The event log key of the session (see `sessionKey`). */
    readonly key: string,
    private readonly log: EventLog,
    lastSeq: number,
  ) {
    this.seq = lastSeq;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Events emitted but not yet in the log (a write in flight, or failed and waiting for a retry). */
  get unwritten(): number {
    return this.pending.length;
  }

  /** Numbers, publishes and persists the events; returns them as stored. */
  emit(...events: NewEvent[]): StoredEvent[] {
    if (events.length === 0) return [];
    const createdAt = new Date().toISOString();
    const stored: StoredEvent[] = events.map((e) => ({
      ...e,
      id: newEventId(),
      seq: ++this.seq,
      created_at: createdAt,
    }));
    this.recent.push(...stored);
    if (this.recent.length > RECENT_EVENTS) this.recent.splice(0, this.recent.length - RECENT_EVENTS);
    this.pending.push(...stored);
    // The next append runs in the async context of the latest emit (the turn that emitted: its span),
    // not in that of the emit that started the write loop, which may be an earlier turn's.
    this.emitScope = new AsyncResource('berth.events');
    // A failure stays with the pending events, for the next flush() to report.
    this.write().catch(() => undefined);
    for (const event of stored) {
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch {
          // A failing subscriber (a closed socket) must not stop the session or the other subscribers.
        }
      }
    }
    return stored;
  }

  /**
   * Resolves when every event emitted so far is in the log. When a write fails it rejects, and every
   * later call writes the pending events again and rejects as long as that fails.
   */
  async flush(): Promise<void> {
    if (this.pending.length === 0 && !this.writing) return;
    await this.write();
  }

  /**
   * Writes the pending events, and those emitted while it runs, in seq order; joins the write in flight
   * if there is one. Events emitted while a write is in flight go together in the next append: one
   * transaction for a burst of events.
   */
  private write(): Promise<void> {
    this.writing ??= (async () => {
      try {
        while (this.pending.length > 0) {
          const batch = this.pending.slice();
          try {
            const append = (): Promise<unknown> =>
              this.retrying ? appendEventsOnce(this.log, this.key, batch) : this.log.append(this.key, batch);
            await (this.emitScope ? this.emitScope.runInAsyncScope(append) : append());
          } catch (err) {
            this.retrying = true;
            throw err instanceof Error ? err : new Error(String(err));
          }
          this.pending.splice(0, batch.length);
          this.retrying = false;
        }
      } finally {
        this.writing = undefined;
      }
    })();
    return this.writing;
  }

  /**
   * Stored events with `seq > after`, oldest first. Recent events come from memory (so reconnecting
   * clients and pollers cost the store nothing, and work while it is down); older ones from the log, after
   * waiting for pending writes.
   */
  async list(after: number, limit: number): Promise<StoredEvent[]> {
    const oldest = this.recent[0];
    if (oldest && after >= oldest.seq - 1) {
      const from = after - oldest.seq + 1;
      return this.recent.slice(from, from + Math.max(0, limit));
    }
    await this.flush();
    return this.log.list(this.key, { after, limit });
  }

  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * This host stops serving the session (another host took it over): streams open here end, so that
   * their clients reconnect with `Last-Event-ID` and reach the session where it runs now.
   */
  end(): void {
    this.endedHere = true;
    for (const listener of this.endListeners) listener();
    this.endListeners.clear();
  }

  /** Calls `listener` once when {@link end} is called (at once if it was); returns the unsubscribe function. */
  onEnd(listener: () => void): () => void {
    if (this.endedHere) {
      listener();
      return () => undefined;
    }
    this.endListeners.add(listener);
    return () => this.endListeners.delete(listener);
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }
}
