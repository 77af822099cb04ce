/** A small SSE client for tests: reads `id`/`event`/`data` frames from a fetch response. */
import type { ApiEvent } from './api-events.js';

export interface SseFrame {
  id: string | undefined;
  event: string | undefined;
  data: string;
}

export class SseClient {
  readonly frames: SseFrame[] = [];
  readonly comments: string[] = [];
  private readonly controller = new AbortController();
  private waiters: Array<() => void> = [];
  private ended = false;
  readonly status: Promise<number>;

  constructor(url: string, headers: Record<string, string> = {}) {
    let setStatus!: (s: number) => void;
    this.status = new Promise((r) => (setStatus = r));
    void this.run(url, headers, setStatus);
  }

  get events(): ApiEvent[] {
    return this.frames.filter((f) => f.event !== undefined).map((f) => JSON.parse(f.data) as ApiEvent);
  }

  private async run(
    url: string,
    headers: Record<string, string>,
    setStatus: (s: number) => void,
  ): Promise<void> {
    try {
      const res = await fetch(url, {
        headers: { accept: 'text/event-stream', ...headers },
        signal: this.controller.signal,
      });
      setStatus(res.status);
      if (!res.body) return;
      const decoder = new TextDecoder();
      let buffer = '';
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by close(), or the server went away
    } finally {
      setStatus(0);
      this.ended = true;
      this.notify();
    }
  }

  private parse(block: string): void {
    const frame: SseFrame = { id: undefined, event: undefined, data: '' };
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('id:')) frame.id = line.slice(3).trim();
      else if (line.startsWith('event:')) frame.event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (frame.event === undefined && data.length === 0) {
      this.notify();
      return;
    }
    frame.data = data.join('\n');
    this.frames.push(frame);
    this.notify();
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** Resolves with the first event (from the start of the stream) that matches. */
  async waitFor(predicate: (e: ApiEvent) => boolean, timeoutMs = 60_000): Promise<ApiEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(predicate);
      if (found) return found;
      if (this.ended) throw new Error(`SSE stream ended before the awaited event; got ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for an SSE event; got ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits until the stream has ended (server closed it). */
  async waitForEnd(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('Timed out waiting for the SSE stream to end');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  describe(): string {
    return this.events.map((e) => `${e.seq}:${e.type}`).join(', ') || '(nothing)';
  }

  close(): void {
    this.controller.abort();
  }
}
