/**
 * The events of one session: numbers them, publishes them to live subscribers at once, and writes them
 * to the event log in order. Readers of history call `flush()` first so that what they read includes
 * everything already published.
 */
import { randomBytes } from 'node:crypto';
import type { EventLog } from '../stores/types.js';
import type { NewEvent, StoredEvent } from './events.js';

export type EventListener = (event: StoredEvent) => void;

/** How many of a session's latest events are kept in memory for readers. */
const RECENT_EVENTS = 1000;

function eventId(): string {
  return `evt_${randomBytes(12).toString('base64url')}`;
}

export class SessionEventStream {
  private seq: number;
  private readonly listeners = new Set<EventListener>();
  private writing: Promise<void> = Promise.resolve();
  private readonly unwritten: StoredEvent[] = [];
  /** The latest events this process emitted, contiguous in seq. */
  private readonly recent: StoredEvent[] = [];
  private writeError: Error | undefined;

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

  /** Numbers, publishes and persists the events; returns them as stored. */
  emit(...events: NewEvent[]): StoredEvent[] {
    if (events.length === 0) return [];
    const createdAt = new Date().toISOString();
    const stored: StoredEvent[] = events.map((e) => ({
      ...e,
      id: eventId(),
      seq: ++this.seq,
      created_at: createdAt,
    }));
    this.recent.push(...stored);
    if (this.recent.length > RECENT_EVENTS) this.recent.splice(0, this.recent.length - RECENT_EVENTS);
    // Events emitted while a write is queued join that write: one transaction for a burst of events.
    const scheduleWrite = this.unwritten.length === 0;
    this.unwritten.push(...stored);
    if (scheduleWrite) {
      this.writing = this.writing.then(() => {
        const batch = this.unwritten.splice(0);
        return this.log.append(this.key, batch).catch((err: unknown) => {
          // Kept for flush(): a lost event must surface to the next reader, not vanish.
          this.writeError ??= err instanceof Error ? err : new Error(String(err));
        });
      });
    }
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

  /** Resolves when every event emitted so far is in the log; rejects if one could not be written. */
  async flush(): Promise<void> {
    await this.writing;
    if (this.writeError !== undefined) {
      const err = this.writeError;
      this.writeError = undefined;
      throw err;
    }
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

  get subscriberCount(): number {
    return this.listeners.size;
  }
}
