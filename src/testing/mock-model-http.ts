/**
 * The mock model's side of the HTTP exchange: reading a request body, answering with JSON, and writing
 * a reply as an SSE stream or a JSON message with the faults a {@link Fault} asks for (a delay between
 * frames, a stall after `message_start`, a connection dropped after N events).
 *
 * Every wait takes the response's `AbortSignal`, which aborts when the client goes away or the mock model
 * closes: nothing is written after that, and no stall outlives its connection.
 */
import type http from 'node:http';
import { formatSseFrame, streamEvents, type WireMessage } from './anthropic-sse.js';
import type { Fault } from './scenario.js';

// Long sessions resend their whole transcript each request; a body this size is a runaway client.
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
// setTimeout fires after 1 ms when given more than 2^31-1 ms, so longer stalls wait for an abort only.
const MAX_TIMER_MS = 2 ** 31 - 1;

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: http.OutgoingHttpHeaders = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/** The parsed JSON, or undefined for an empty or malformed body. */
export function parseJson(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** The request body as text; null when it exceeds MAX_BODY_BYTES (the rest is drained unread). */
export async function readBody(req: http.IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  return size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString('utf8');
}

/** Streams `message` as SSE, applying the fault's frame delay, stall and drop. */
export async function streamReply(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  message: WireMessage,
  requestId: string,
  fault: Fault,
  signal: AbortSignal,
): Promise<void> {
  if (fault.dropAfterEvents === 0) {
    req.socket.destroy();
    return;
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'request-id': requestId,
  });
  let sent = 0;
  for (const event of streamEvents(message)) {
    if (sent > 0 && fault.chunkDelayMs) await delay(fault.chunkDelayMs, signal);
    if (signal.aborted || !(await writeFrame(res, formatSseFrame(event), signal))) {
      res.destroy();
      return;
    }
    sent += 1;
    if (event.event === 'message_start' && fault.stallMs) {
      await delay(fault.stallMs, signal);
      if (signal.aborted) {
        res.destroy();
        return;
      }
    }
    if (fault.dropAfterEvents !== undefined && sent >= fault.dropAfterEvents) {
      req.socket.destroy();
      return;
    }
  }
  res.end();
}

/** Answers with `message` as one JSON body, after the fault's stall; any drop drops it unanswered. */
export async function respondReply(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  message: WireMessage,
  requestId: string,
  fault: Fault,
  signal: AbortSignal,
): Promise<void> {
  // A JSON reply has no events to drop after, so any dropAfterEvents drops it unanswered.
  if (fault.dropAfterEvents !== undefined) {
    req.socket.destroy();
    return;
  }
  if (fault.stallMs) await delay(fault.stallMs, signal);
  if (signal.aborted) {
    res.destroy();
    return;
  }
  sendJson(res, 200, message, { 'request-id': requestId });
}

/** Resolves after `ms` or as soon as `signal` aborts, whichever comes first. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = Number.isFinite(ms) && ms <= MAX_TIMER_MS ? setTimeout(done, ms) : undefined;
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * Writes one frame and waits until it is handed to the socket, so a fault that follows (a stall,
 * a dropped connection) happens after the client could read everything before it.
 * @returns false when the client went away first.
 */
function writeFrame(res: http.ServerResponse, frame: string, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const onAbort = (): void => resolve(false);
    signal.addEventListener('abort', onAbort, { once: true });
    res.write(frame, (err) => {
      signal.removeEventListener('abort', onAbort);
      resolve(!err && !signal.aborted);
    });
  });
}
