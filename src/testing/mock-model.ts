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
 *
 * Replies report no token use unless asked to ({@link MockModelOptions.usage}, {@link Reply.usage}): the `claude`
 * CLI prices a reply's usage at the list price of the model it asked for (an id it does not know at its
 * default model's), and so does Berth's model meter, so estimated counts would make every scripted turn
 * cost what a real one of that size would (about USD 0.05 for a first turn). A scripted turn is free.
 *
 * This module routes a request and decides the reply: the scenario step (`scenario-matcher.ts`) and the
 * fault. Writing it (SSE, JSON, the faults' delays and drops) is `mock-model-http.ts`; the request log that
 * tests read and wait on is `request-log.ts`.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '../errors.js';
import { errorTypeForStatus, wireError, type WireContentBlock, type WireMessage } from './anthropic-sse.js';
import {
  analyzeRequest,
  estimateTokens,
  isMessagesRequestBody,
  type AnalyzedRequest,
} from './messages-request.js';
import {
  MAX_BODY_BYTES,
  parseJson,
  readBody,
  respondReply,
  sendJson,
  streamReply,
} from './mock-model-http.js';
import {
  RequestLog,
  credentialFingerprint,
  type RecordedRequest,
  type WaitForRequestOptions,
} from './request-log.js';
import { ScenarioMatcher, fillerText, type ReplyPlan } from './scenario-matcher.js';
import { parseFault, type Fault, type Scenario } from './scenario.js';

export { credentialFingerprint } from './request-log.js';
export type { RecordedRequest, WaitForRequestOptions } from './request-log.js';

/** Options of {@link startMockModel}. */
export interface MockModelOptions {
  /** @default 0 (a free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /** Tried in order; the first match answers. @default [] (every request gets the default reply) */
  scenarios?: readonly Scenario[];
  /** The request log keeps this many of the newest requests. @default 10_000 */
  maxRecordedRequests?: number;
  /**
   * The token counts a reply reports where its {@link Reply.usage} gives none: `'none'` reports 0, so the
   * reply costs nothing; `'estimate'` reports estimates of 4 characters a token (the request's input, the
   * reply's output), which the CLI and Berth's meter price at the requested model's list price.
   * @default 'none'
   */
  usage?: 'none' | 'estimate';
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
  /** The names of the scenarios it tries, in order (`#<index>` for an unnamed one). */
  readonly scenarioNames: readonly string[];
  /** Replaces the scenarios. @throws BerthError `invalid_config` */
  setScenarios(scenarios: readonly Scenario[]): void;
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

class MockModelServer implements MockModel {
  readonly #server: http.Server;
  readonly #host: string;
  readonly #matcher: ScenarioMatcher;
  readonly #log: RequestLog;
  readonly #open = new Set<AbortController>();
  // Ids must not repeat across mock models either: a session resumed against a new mock model
  // keeps the old ids in its transcript, and the CLI merges assistant messages by id.
  readonly #idPrefix = randomBytes(4).toString('hex');
  #toolUseIds = 0;
  #port = 0;
  #fault: { fault: Fault; remaining: number | undefined } | null = null;
  readonly #estimateUsage: boolean;
  #closing: Promise<void> | null = null;

  constructor(options: MockModelOptions) {
    this.#host = options.host ?? '127.0.0.1';
    this.#estimateUsage = options.usage === 'estimate';
    this.#log = new RequestLog(options.maxRecordedRequests ?? 10_000);
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
    return this.#log.entries;
  }

  get openResponses(): number {
    return this.#open.size;
  }

  get scenarioNames(): readonly string[] {
    return this.#matcher.names;
  }

  setScenarios(scenarios: readonly Scenario[]): void {
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
    this.#log.clear();
  }

  waitForRequest(
    predicate: (request: RecordedRequest) => boolean,
    options: WaitForRequestOptions = {},
  ): Promise<RecordedRequest> {
    return this.#log.waitFor(predicate, options);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const controller of this.#open) controller.abort();
    this.#log.close();
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
    const key = req.headers['x-api-key'];
    const bearer = req.headers.authorization?.replace(/^Bearer /, '');
    const credential = typeof key === 'string' && key !== '' ? key : bearer;
    return this.#log.add({
      method: req.method ?? 'GET',
      path,
      sessionId: this.#sessionId(req),
      headers,
      credential: credential ? credentialFingerprint(credential) : null,
      body,
      isMain: false,
      userText: null,
      toolResults: [],
      messages: [],
      matchedScenario: null,
      stepIndex: null,
      ...extra,
    });
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
    if (request.stream) await streamReply(req, res, message, requestId, fault, signal);
    else await respondReply(req, res, message, requestId, fault, signal);
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
          (this.#estimateUsage
            ? estimateTokens({ system: body.system, messages: body.messages, tools: body.tools })
            : 0),
        output_tokens: plan.usage?.output_tokens ?? (this.#estimateUsage ? estimateTokens(content) : 0),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
    };
  }
}
