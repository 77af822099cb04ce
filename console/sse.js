/**
 * Event streams read with fetch(), since EventSource cannot send an API key. The reader parses
 * Server-Sent Events itself and reconnects after a drop with `Last-Event-ID` set to the last event it
 * saw, so the server replays exactly what was missed; an event at or below that id is never delivered
 * twice. A stream that sends nothing (not even a heartbeat comment) for IDLE_MS is taken for dead.
 */
import { authHeaders, errorOf } from './api.js';

/** Three of the server's default 15 s heartbeats. */
const IDLE_MS = 45_000;
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 5_000;

/** Splits SSE text into messages `{event, data, id}`; `id` is undefined for a message without one. */
export class SseParser {
  /** @param {(message: {event: string, data: string, id: string | undefined}) => void} onMessage */
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = undefined;
  }

  /** @param {string} text the next chunk, decoded */
  push(text) {
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer[i];
      if (ch !== '\n' && ch !== '\r') continue;
      // A CR at the end of the chunk may be the first half of a CRLF: wait for the next chunk.
      if (ch === '\r' && i === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, i));
      if (ch === '\r' && this.buffer[i + 1] === '\n') i++;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      if (this.data.length > 0) {
        this.onMessage({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return; // a comment: the server's heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

/**
 * A stream of one URL's events, reconnecting until closed or until its final event.
 * `onEvent(name, data, seq)` gets each event once, in order (`seq` is its SSE id as a number, or
 * undefined); `onState(state, error?)` is told `connecting`, `live`, `reconnecting`, `ended` or `failed`.
 */
export class EventStream {
  /**
   * @param {string} url
   * @param {{
   *   onEvent: (name: string, data: any, seq: number | undefined) => void,
   *   onState?: (state: string, error?: Error) => void,
   *   isFinal?: (name: string) => boolean,
   *   after?: number,
   * }} options `after`: replay the events after this seq first (0: all of them)
   */
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.lastSeq = options.after;
    this.closed = false;
    this.finished = false;
    this.controller = undefined;
    this.wakeRetry = undefined;
  }

  start() {
    void this.run();
    return this;
  }

  close() {
    this.closed = true;
    this.controller?.abort();
    this.wakeRetry?.();
  }

  state(state, error) {
    this.options.onState?.(state, error);
  }

  async run() {
    let delay = FIRST_RETRY_MS;
    while (!this.closed && !this.finished) {
      const controller = new AbortController();
      this.controller = controller;
      let idle;
      const arm = () => {
        clearTimeout(idle);
        idle = setTimeout(() => controller.abort(), IDLE_MS);
      };
      try {
        this.state('connecting');
        const headers = { ...authHeaders(), accept: 'text/event-stream' };
        if (this.lastSeq !== undefined) headers['last-event-id'] = String(this.lastSeq);
        arm();
        const res = await fetch(this.url, { headers, signal: controller.signal, cache: 'no-store' });
        if (!res.ok) {
          const err = await errorOf(res);
          // A refusal that retrying cannot change (a missing session, a bad key) ends the stream.
          if (res.status < 500 && res.status !== 429 && res.status !== 408) {
            this.state('failed', err);
            return;
          }
          throw err;
        }
        this.state('live');
        delay = FIRST_RETRY_MS;
        const parser = new SseParser((message) => this.deliver(message));
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          arm();
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(value);
          if (this.finished || this.closed) {
            controller.abort();
            break;
          }
        }
      } catch {
        // A dropped connection, a silent one, or a server error: reconnect below.
      } finally {
        clearTimeout(idle);
      }
      if (this.closed) return;
      if (this.finished) break;
      this.state('reconnecting');
      await new Promise((resolve) => {
        this.wakeRetry = resolve;
        setTimeout(resolve, delay);
      });
      this.wakeRetry = undefined;
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    }
    if (!this.closed) this.state('ended');
  }

  deliver(message) {
    if (this.closed) return;
    const seq = message.id === undefined || message.id === '' ? undefined : Number(message.id);
    if (seq !== undefined && Number.isFinite(seq)) {
      // Already delivered before a reconnect: the server replays from Last-Event-ID, so this is rare.
      if (this.lastSeq !== undefined && seq <= this.lastSeq) return;
      this.lastSeq = seq;
    }
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      data = message.data;
    }
    this.options.onEvent(message.event, data, seq);
    if (this.options.isFinal?.(message.event)) this.finished = true;
  }
}
