/**
 * The mock model's request log: every request it received, newest last, numbered from 1, bounded to the
 * newest `max`. Tests read it and wait on it ({@link RequestLog.waitFor}): a waiter is checked against each
 * request as it is logged, so a request that arrives while a test waits is never missed.
 */
import { createHash } from 'node:crypto';
import { describeError } from '../errors.js';

/** One request the mock model received, as the request log keeps it. */
export interface RecordedRequest {
  /** 1 for the first request the mock model received, then increasing. */
  seq: number;
  /** `Date.now()` when the request body had arrived. */
  at: number;
  method: string;
  /** The URL path without the query string. */
  path: string;
  /** The `x-claude-code-session-id` header. */
  sessionId: string | null;
  /** Request headers without credentials (`x-api-key`, `authorization`, cookies). */
  headers: Record<string, string>;
  /**
   * The credential the request carried (`x-api-key`, else a bearer token) as {@link credentialFingerprint}
   * gives it, so that a test can tell which key arrived without the log holding one; null when none.
   */
  credential: string | null;
  /** The parsed JSON body; the raw text when it is not JSON; null when empty. */
  body: unknown;
  /** A messages request that offers tools (the agent loop), as opposed to a side request. */
  isMain: boolean;
  /** The user's words of the current turn, without `<system-reminder>` parts. */
  userText: string | null;
  /** The `tool_result` blocks of the last user message, reduced to text. */
  toolResults: Array<{ tool_use_id: string; text: string; is_error: boolean }>;
  messages: unknown[];
  /** The scenario whose step answered; null for the default reply and for other routes. */
  matchedScenario: string | null;
  /** The step index the reply was chosen for; null for other routes. */
  stepIndex: number | null;
}

/** Options of {@link MockModel.waitForRequest}. */
export interface WaitForRequestOptions {
  /** @default 30_000 */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Waiter {
  predicate: (request: RecordedRequest) => boolean;
  resolve: (request: RecordedRequest) => void;
  reject: (err: Error) => void;
}

export class RequestLog {
  readonly #max: number;
  readonly #entries: RecordedRequest[] = [];
  readonly #waiters = new Set<Waiter>();
  #seq = 0;
  #closed = false;

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  /** A snapshot, oldest first. */
  get entries(): readonly RecordedRequest[] {
    return this.#entries.slice();
  }

  /** Numbers, stamps and keeps `request`, then hands it to every waiter it satisfies. */
  add(request: Omit<RecordedRequest, 'seq' | 'at'>): RecordedRequest {
    this.#seq += 1;
    const recorded: RecordedRequest = { seq: this.#seq, at: Date.now(), ...request };
    this.#entries.push(recorded);
    if (this.#entries.length > this.#max) this.#entries.splice(0, this.#entries.length - this.#max);
    for (const waiter of this.#waiters) {
      let hit: boolean;
      try {
        hit = waiter.predicate(recorded);
      } catch (err) {
        waiter.reject(toError(err));
        continue;
      }
      if (hit) waiter.resolve(recorded);
    }
    return recorded;
  }

  clear(): void {
    this.#entries.length = 0;
  }

  /**
   * The oldest logged request for which `predicate` holds, waiting for one to arrive if none has.
   * Rejects on timeout, on `signal`, and when the log is closed.
   */
  waitFor(
    predicate: (request: RecordedRequest) => boolean,
    options: WaitForRequestOptions = {},
  ): Promise<RecordedRequest> {
    let found: RecordedRequest | undefined;
    try {
      found = this.#entries.find(predicate);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    if (found) return Promise.resolve(found);
    const { timeoutMs = 30_000, signal } = options;
    return new Promise<RecordedRequest>((resolve, reject) => {
      if (this.#closed) return reject(new Error('mock model is closed'));
      if (signal?.aborted) return reject(toError(signal.reason));
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters.delete(waiter);
      };
      const waiter: Waiter = {
        predicate,
        resolve: (request) => {
          cleanup();
          resolve(request);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      };
      const onAbort = (): void => waiter.reject(toError(signal?.reason));
      const timer = setTimeout(
        () => waiter.reject(new Error(`waitForRequest: no matching request within ${timeoutMs} ms`)),
        timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** Rejects every waiter, and every later wait that the log cannot already answer. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters) waiter.reject(new Error('mock model is closed'));
  }
}

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(describeError(value));
}

/** A short, one-way fingerprint of a credential (the first 16 hex digits of its SHA-256). */
export function credentialFingerprint(credential: string): string {
  return createHash('sha256').update(credential).digest('hex').slice(0, 16);
}
