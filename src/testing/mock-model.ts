/**
 * A scripted Anthropic Messages API on a real HTTP port. The real `claude` CLI uses it as
 * `ANTHROPIC_BASE_URL`, so tests and benchmarks run real Agent SDK sessions offline.
 *
 * Routes (query strings such as `?beta=true` are ignored):
 * - `HEAD|GET /api/hello`: 200, the CLI's connectivity probe.
 * - `POST /v1/messages`: a scripted reply (see {@link Scenario}), streamed as SSE when `stream` is
 *   true, else a JSON message; faults from {@link MockModel.setFault} and {@link Reply.fault}.
 * - `POST /v1/messages/count_tokens`: `{ input_tokens }`, estimated at 4 characters a token.
 * - anything else: 404 with an Anthropic error body; malformed bodies: 400.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '../errors.js';
import {
  errorTypeForStatus,
  formatSseFrame,
  streamEvents,
  wireError,
  type WireContentBlock,
  type WireMessage,
} from './anthropic-sse.js';
import {
  analyzeRequest,
  estimateTokens,
  isMessagesRequestBody,
  type AnalyzedRequest,
} from './messages-request.js';
import { ScenarioMatcher, fillerText, type ReplyPlan } from './scenario-matcher.js';
import { parseFault, type Fault, type Scenario } from './scenario.js';

/** Options of {@link startMockModel}. */
export interface MockModelOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Tried in order; the first match answers. @default [] (every request gets the default reply) */
  scenarios?: Scenario[];
  /** The request log keeps this many of the newest requests. @default 10_000 */
  maxRecordedRequests?: number;
}

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

/** A running mock model. */
export interface MockModel {
  /** The base URL for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** A snapshot of the request log, oldest first. */
  readonly requests: readonly RecordedRequest[];
  /** Responses still being written (streams in progress, stalls). */
  readonly openResponses: number;
  /** Replaces the scenarios. @throws BerthError `invalid_config` */
  setScenarios(scenarios: Scenario[]): void;
  /** Appends a scenario, tried after the existing ones. @throws BerthError `invalid_config` */
  addScenario(scenario: Scenario): void;
  /**
   * Sets the fault for `POST /v1/messages` requests (see {@link Fault.times} and
   * {@link Fault.scope}); null clears it. @throws BerthError `invalid_config`
   */
  setFault(fault: Fault | null): void;
  clearRequests(): void;
  /**
   * The oldest logged request for which `predicate` holds, waiting for one to arrive if none has.
   * Rejects on timeout, on `signal`, and when the mock model closes.
   */
  waitForRequest(
    predicate: (request: RecordedRequest) => boolean,
    options?: WaitForRequestOptions,
  ): Promise<RecordedRequest>;
  /** Ends open streams (and stalls) and stops the server. Idempotent. */
  close(): Promise<void>;
}

// Long sessions resend their whole transcript each request; a body this size is a runaway client.
const MAX_BODY_BYTES = 64 * 1024 * 1024;
// setTimeout fires after 1 ms when given more than 2^31-1 ms, so longer stalls wait for an abort only.
const MAX_TIMER_MS = 2 ** 31 - 1;
const SECRET_HEADERS = new Set(['x-api-key', 'authorization', 'proxy-authorization', 'cookie']);

/**
 * Starts a mock model listening on `options.host:options.port`.
 * @throws BerthError `invalid_config` when a scenario is invalid; the listen error when the port is taken.
 */
export async function startMockModel(options: MockModelOptions = {}): Promise<MockModel> {
  const model = new MockModelServer(options);
  await model.listen(options.port ?? 0);
  return model;
}

interface Waiter {
  predicate: (request: RecordedRequest) => boolean;
  resolve: (request: RecordedRequest) => void;
  reject: (err: Error) => void;
}

class MockModelServer implements MockModel {
  readonly #server: http.Server;
  readonly #host: string;
  readonly #matcher: ScenarioMatcher;
  readonly #maxLog: number;
  readonly #log: RecordedRequest[] = [];
  readonly #waiters = new Set<Waiter>();
  readonly #open = new Set<AbortController>();
  // Ids must not repeat across mock models either: a session resumed against a new mock model
  // keeps the old ids in its transcript, and the CLI merges assistant messages by id.
  readonly #idPrefix = randomBytes(4).toString('hex');
  #seq = 0;
  #toolUseIds = 0;
  #port = 0;
  #fault: { fault: Fault; remaining: number | undefined } | null = null;
  #closing: Promise<void> | null = null;

  constructor(options: MockModelOptions) {
    this.#host = options.host ?? '127.0.0.1';
    this.#maxLog = Math.max(1, options.maxRecordedRequests ?? 10_000);
    this.#matcher = new ScenarioMatcher(
      options.scenarios ?? [],
      () => `toolu_mock_${this.#idPrefix}_${(this.#toolUseIds += 1)}`,
    );
    this.#server = http.createServer((req, res) => this.#onRequest(req, res));
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, this.#host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  get url(): string {
    const host = this.#host === '0.0.0.0' || this.#host === '::' ? '127.0.0.1' : this.#host;
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get requests(): readonly RecordedRequest[] {
    return this.#log.slice();
  }

  get openResponses(): number {
    return this.#open.size;
  }

  setScenarios(scenarios: Scenario[]): void {
    this.#matcher.set(scenarios);
  }

  addScenario(scenario: Scenario): void {
    this.#matcher.add(scenario);
  }

  setFault(fault: Fault | null): void {
    if (fault === null) {
      this.#fault = null;
      return;
    }
    const parsed = parseFault(fault);
    this.#fault = { fault: parsed, remaining: parsed.times };
  }

  clearRequests(): void {
    this.#log.length = 0;
  }

  waitForRequest(
    predicate: (request: RecordedRequest) => boolean,
    options: WaitForRequestOptions = {},
  ): Promise<RecordedRequest> {
    let found: RecordedRequest | undefined;
    try {
      found = this.#log.find(predicate);
    } catch (err) {
      return Promise.reject(toError(err));
    }
    if (found) return Promise.resolve(found);
    const { timeoutMs = 30_000, signal } = options;
    return new Promise<RecordedRequest>((resolve, reject) => {
      if (this.#closing) return reject(new Error('mock model is closed'));
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

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const controller of this.#open) controller.abort();
    for (const waiter of this.#waiters) waiter.reject(new Error('mock model is closed'));
    await new Promise<void>((resolve) => {
      // The callback gets an error when the server never listened; closing is done either way.
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #record(
    req: http.IncomingMessage,
    path: string,
    body: unknown,
    extra: Partial<RecordedRequest>,
  ): RecordedRequest {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || SECRET_HEADERS.has(name)) continue;
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    this.#seq += 1;
    const request: RecordedRequest = {
      seq: this.#seq,
      at: Date.now(),
      method: req.method ?? 'GET',
      path,
      sessionId: this.#sessionId(req),
      headers,
      body,
      isMain: false,
      userText: null,
      toolResults: [],
      messages: [],
      matchedScenario: null,
      stepIndex: null,
      ...extra,
    };
    this.#log.push(request);
    if (this.#log.length > this.#maxLog) this.#log.splice(0, this.#log.length - this.#maxLog);
    for (const waiter of this.#waiters) {
      let hit: boolean;
      try {
        hit = waiter.predicate(request);
      } catch (err) {
        waiter.reject(toError(err));
        continue;
      }
      if (hit) waiter.resolve(request);
    }
    return request;
  }

  #onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const controller = new AbortController();
    this.#open.add(controller);
    // 'close' fires when the response finished or the client went away; either way nothing more
    // may be written, so a stall or a delay in progress ends now.
    res.on('close', () => {
      controller.abort();
      this.#open.delete(controller);
    });
    if (this.#closing) {
      res.destroy();
      return;
    }
    this.#handle(req, res, controller.signal).catch((err: unknown) => {
      // A client that went away mid-upload makes reading the body throw; nobody is left to answer.
      if (controller.signal.aborted) return;
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, wireError('api_error', `mock model failed: ${describeError(err)}`));
    });
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse, signal: AbortSignal): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://mock.invalid').pathname.replace(/\/+$/, '') || '/';
    const raw = await readBody(req);
    if (signal.aborted) return;
    if (raw === null) {
      this.#record(req, path, null, {});
      sendJson(res, 413, wireError('request_too_large', `request body exceeds ${MAX_BODY_BYTES} bytes`));
      return;
    }

    if (path === '/api/hello' && (method === 'HEAD' || method === 'GET')) {
      this.#record(req, path, raw === '' ? null : raw, {});
      res.writeHead(200, { 'content-length': '0' }).end();
      return;
    }
    const isMessages = path === '/v1/messages' && method === 'POST';
    const isCount = path === '/v1/messages/count_tokens' && method === 'POST';
    if (!isMessages && !isCount) {
      this.#record(req, path, parseJson(raw) ?? (raw === '' ? null : raw), {});
      sendJson(res, 404, wireError('not_found_error', `${method} ${path} is not a route of the mock model`));
      return;
    }

    const body = parseJson(raw);
    if (body === undefined || !isMessagesRequestBody(body)) {
      this.#record(req, path, body ?? raw, {});
      const message = body === undefined ? 'request body is not valid JSON' : 'messages: expected an array';
      sendJson(res, 400, wireError('invalid_request_error', message));
      return;
    }
    const request = analyzeRequest(body);
    const base: Partial<RecordedRequest> = {
      isMain: request.isMain,
      userText: request.userText,
      toolResults: request.toolResults,
      messages: request.messages,
    };

    if (isCount) {
      this.#record(req, path, body, base);
      sendJson(res, 200, {
        input_tokens: estimateTokens({ system: body.system, messages: body.messages, tools: body.tools }),
      });
      return;
    }

    const globalFault = this.#takeGlobalFault(request.isMain);
    const plan = this.#matcher.plan(request, this.#sessionId(req));
    const { seq } = this.#record(req, path, body, {
      ...base,
      matchedScenario: plan.scenarioName,
      stepIndex: plan.stepIndex,
    });
    const fault: Fault = { ...globalFault, ...plan.fault };

    if (fault.status !== undefined) {
      const headers: http.OutgoingHttpHeaders = {};
      if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
      sendJson(
        res,
        fault.status,
        wireError(errorTypeForStatus(fault.status), `mock fault: HTTP ${fault.status}`),
        headers,
      );
      return;
    }

    const message = this.#buildMessage(seq, request, body, plan, fault);
    const requestId = `req_mock_${this.#idPrefix}_${seq}`;
    if (request.stream) await this.#stream(req, res, message, requestId, fault, signal);
    else await this.#respond(req, res, message, requestId, fault, signal);
  }

  #sessionId(req: http.IncomingMessage): string | null {
    const value = req.headers['x-claude-code-session-id'];
    return typeof value === 'string' ? value : null;
  }

  #takeGlobalFault(isMain: boolean): Fault | undefined {
    const current = this.#fault;
    if (current === null) return undefined;
    const scope = current.fault.scope ?? 'all';
    if ((scope === 'main' && !isMain) || (scope === 'side' && isMain)) return undefined;
    if (current.remaining !== undefined) {
      current.remaining -= 1;
      if (current.remaining <= 0) this.#fault = null;
    }
    return current.fault;
  }

  #buildMessage(
    seq: number,
    request: AnalyzedRequest,
    body: Record<string, unknown>,
    plan: ReplyPlan,
    fault: Fault,
  ): WireMessage {
    let content: WireContentBlock[] = plan.content;
    let stopReason = plan.stopReason;
    if (fault.largeReplyBytes !== undefined) {
      content = [{ type: 'text', text: fillerText(fault.largeReplyBytes) }];
      stopReason = 'end_turn';
    }
    return {
      id: `msg_mock_${this.#idPrefix}_${seq}`,
      type: 'message',
      role: 'assistant',
      model: request.model,
      content,
      stop_reason: stopReason,
      stop_sequence: null,
      usage: {
        input_tokens:
          plan.usage?.input_tokens ??
          estimateTokens({ system: body.system, messages: body.messages, tools: body.tools }),
        output_tokens: plan.usage?.output_tokens ?? estimateTokens(content),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    };
  }

  async #stream(
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

  async #respond(
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
}

function sendJson(
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

function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(describeError(value));
}

function parseJson(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** The request body as text; null when it exceeds MAX_BODY_BYTES (the rest is drained unread). */
async function readBody(req: http.IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  return size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString('utf8');
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
