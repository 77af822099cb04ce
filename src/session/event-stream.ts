/**
 * The events of one session: numbers them, publishes them to live subscribers at once, and writes them
 * to the event log in order. Readers of history call `flush()` first so that what they read includes
 * everything already published.
 */
import { randomBytes } from 'node:crypto';
import type { EventLog } from '../stores/types.js';
import type { NewEvent, StoredEvent } from './events.js';

export type EventListener = (event: StoredEvent) => void;

function eventId(): string {
  return `evt_${randomBytes(12).toString('base64url')}`;
}

export class SessionEventStream {
  private seq: number;
  private readonly listeners = new Set<EventListener>();
  private writing: Promise<void> = Promise.resolve();
  private readonly unwritten: StoredEvent[] = [];
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

  /** Stored events with `seq > after`, oldest first; call `flush()` first to include the latest. */
  list(after: number, limit: number): Promise<StoredEvent[]> {
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
