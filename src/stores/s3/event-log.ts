/**
 * The event log on S3. One object per appended batch, under the store's root:
 *
 *   events/<session key>/b<max seq:16>-<min seq:16>-<writer><n>   the batch's events, a JSON array
 *
 * Names sort by the batch's highest seq, so `StartAfter: b<after>-~` skips every batch that holds nothing
 * after `after` in one ListObjectsV2, and the last name holds `lastSeq`. A batch's lowest seq is in its
 * name too, so `list` GETs batches in name order only until the events it has are final: no batch left
 * can hold a seq below the smallest lowest seq among the rest.
 *
 * Berth numbers a session's events in the one process that runs it, and batches normally arrive in seq
 * order. An append first lists the batches whose range overlaps its own and reads them: a seq already
 * stored fails the whole batch with `event_seq_conflict` before anything is written. Two processes appending the
 * same seq at the same moment would both pass that check (S3 has no transactions); that is the bug the
 * check exists to surface, and `list` then returns both events.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { BerthError } from '../../errors.js';
import type { StoredEvent } from '../../session/events.js';
import { normalizePrefix, S3Bucket } from './client.js';
import type { ListedObject } from './client.js';
import { encodeSegment, mapLimit, newWriterId, pad } from './common.js';
import type { EventLog, StoreCallOptions } from '../types.js';

/** Options of {@link S3EventLog}. */
export interface S3EventLogOptions {
  /** A configured client; the log never destroys it. */
  client: S3Client;
  bucket: string;
  /**
   * Key prefix of everything the log writes.
   * @default ''
   */
  prefix?: string;
}

const BATCH_NAME = /^b(\d{16})-(\d{16})-[0-9a-z]+\d{10}$/;
/** Batches read at once while `list` collects events. */
const WINDOW = 8;

interface Batch {
  key: string;
  min: number;
  max: number;
}

/**
 * Every event of every session in S3, one object per appended batch, named by seq range; see the header
 * of `s3/event-log.ts`.
 */
export class S3EventLog implements EventLog {
  private readonly bucket: S3Bucket;
  private readonly root: string;
  private readonly writer = newWriterId();
  private counter = 0;

  constructor(options: S3EventLogOptions) {
    this.bucket = new S3Bucket(options.client, options.bucket);
    this.root = normalizePrefix(options.prefix);
  }

  /**
   * Stores the batch whole, or throws `event_seq_conflict` for a seq already stored (or repeated in the
   * batch).
   */
  async append(sessionId: string, events: StoredEvent[], options?: StoreCallOptions): Promise<void> {
    const signal = options?.signal;
    if (events.length === 0) return;
    const seqs = new Set<number>();
    for (const event of events) {
      if (!Number.isSafeInteger(event.seq) || event.seq < 0) {
        throw new BerthError('internal', `event seq ${event.seq} of session ${sessionId} is not a valid seq`);
      }
      if (seqs.has(event.seq)) {
        throw new BerthError(
          'event_seq_conflict',
          `event seq ${event.seq} of session ${sessionId} is repeated in the batch`,
        );
      }
      seqs.add(event.seq);
    }
    const min = Math.min(...seqs);
    const max = Math.max(...seqs);
    const dir = this.dir(sessionId);
    const overlapping = (await this.batches(dir, min - 1, signal)).filter((batch) => batch.min <= max);
    await mapLimit(overlapping, WINDOW, async (batch) => {
      const stored = await this.read(batch, signal);
      const clash = stored === undefined ? undefined : stored.find((event) => seqs.has(event.seq));
      if (clash) {
        throw new BerthError(
          'event_seq_conflict',
          `event seq ${clash.seq} of session ${sessionId} is already stored`,
        );
      }
    });
    const name = `b${pad(max, 16)}-${pad(min, 16)}-${this.writer}${pad(this.counter++, 10)}`;
    await this.bucket.put(dir + name, JSON.stringify(events), signal);
  }

  /** Events with `seq > after`, oldest first, at most `limit`. */
  async list(
    sessionId: string,
    options: { after: number; limit: number } & StoreCallOptions,
  ): Promise<StoredEvent[]> {
    if (!(options.limit > 0) || Number.isNaN(options.after)) return [];
    const { signal } = options;
    const limit = Math.floor(options.limit);
    const after = options.after;
    const batches = await this.batches(this.dir(sessionId), Math.floor(after), signal);
    // lowest[i]: the smallest seq that batches i.. can hold.
    const lowest = batches.map((batch) => batch.min);
    for (let i = lowest.length - 2; i >= 0; i--) lowest[i] = Math.min(lowest[i]!, lowest[i + 1]!);
    const events: StoredEvent[] = [];
    for (let at = 0; at < batches.length; at += WINDOW) {
      const window = batches.slice(at, at + WINDOW);
      for (const stored of await mapLimit(window, WINDOW, (batch) => this.read(batch, signal))) {
        for (const event of stored ?? []) if (event.seq > after) events.push(event);
      }
      // No batch left holds a seq below `floor`, so the events below it are final.
      const floor = lowest[at + WINDOW] ?? Infinity;
      if (events.filter((event) => event.seq < floor).length >= limit) break;
    }
    return events.sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  /** The highest stored `seq`, or 0. */
  async lastSeq(sessionId: string, options?: StoreCallOptions): Promise<number> {
    const batches = await this.batches(this.dir(sessionId), -1, options?.signal);
    return batches.at(-1)?.max ?? 0;
  }

  deleteSession(sessionId: string, options?: StoreCallOptions): Promise<void> {
    return this.bucket.deletePrefix(this.dir(sessionId), options?.signal);
  }

  private dir(sessionId: string): string {
    return `${this.root}events/${encodeSegment(sessionId)}/`;
  }

  /** The session's batches whose highest seq is above `after`, in name (highest seq) order. */
  private async batches(dir: string, after: number, signal: AbortSignal | undefined): Promise<Batch[]> {
    // `~` sorts after the digits, so this skips exactly the names whose highest seq is at most `after`.
    const startAfter =
      after >= 0 ? `${dir}b${pad(Math.min(after, Number.MAX_SAFE_INTEGER), 16)}-~` : undefined;
    const listed: ListedObject[] = await this.bucket.list(dir, {
      ...(startAfter && { startAfter }),
      signal,
    });
    const batches: Batch[] = [];
    for (const object of listed) {
      const match = BATCH_NAME.exec(object.key.slice(dir.length));
      if (match) batches.push({ key: object.key, max: Number(match[1]), min: Number(match[2]) });
    }
    return batches;
  }

  /** A batch's events; undefined when it is gone (deleted since the listing) or still being written. */
  private async read(batch: Batch, signal: AbortSignal | undefined): Promise<StoredEvent[] | undefined> {
    const read = await this.bucket.getJson<StoredEvent[]>(batch.key, signal);
    return read.state === 'ok' ? read.value : undefined;
  }
}
