/**
 * Appending events where an earlier attempt may already have stored them: a retry after a failure whose
 * answer was lost (a deadline, a reset connection), or a spool row shipped just before its host died.
 * Event-log appends are all or nothing, and `event_seq_conflict` is the only code that means "a seq is
 * taken" (`internal` means a bug, and is thrown like any other failure).
 */
import { isBerthError } from '../errors.js';
import type { StoredEvent } from '../session/events.js';
import type { EventLog, StoreCallOptions } from './types.js';

/**
 * Appends `events` to `log`. On `event_seq_conflict` it reads which of their seqs the log holds and
 * appends the events it lacks, so that every seq of the batch is stored when it resolves: nothing is
 * taken as stored without looking. A seq repeated within the batch is stored once, its first event.
 */
export async function appendEventsOnce(
  log: EventLog,
  key: string,
  events: readonly StoredEvent[],
  options: StoreCallOptions = {},
): Promise<void> {
  if (events.length === 0) return;
  try {
    await log.append(key, [...events], options);
    return;
  } catch (err) {
    if (!isBerthError(err, 'event_seq_conflict')) throw err;
  }
  const seqs = events.map((event) => event.seq);
  const min = Math.min(...seqs);
  const max = Math.max(...seqs);
  // The first `max - min + 1` events after `min - 1` include every stored seq of [min, max].
  const stored = await log.list(key, { after: min - 1, limit: max - min + 1, signal: options.signal });
  const held = new Set(stored.map((event) => event.seq));
  const missing: StoredEvent[] = [];
  for (const event of events) {
    if (held.has(event.seq)) continue;
    held.add(event.seq);
    missing.push(event);
  }
  if (missing.length > 0) await log.append(key, missing, options);
}
