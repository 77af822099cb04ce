/**
 * Tracing (docs/operations.md, Traces): a server configured with `OTEL_EXPORTER_OTLP_ENDPOINT` sends its
 * spans by OTLP/HTTP JSON to a collector (here a receiver on the loopback), continuing a caller's W3C
 * `traceparent`; a turn is traced under the request that sent its message. Without an endpoint nothing
 * of the SDK is loaded. `--agent-telemetry` gives an unsandboxed agent's CLI the variables of its own
 * telemetry, tagged with the session.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { trace } from '@opentelemetry/api';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseServeConfig } from '../src/config.js';
import { isBerthError } from '../src/errors.js';
import { agentTelemetryEnv, resourceAttributes } from '../src/host/agent-telemetry-env.js';
import { startBerth, type BerthServer } from '../src/server.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { createSessionAt, testServeConfig, UNSANDBOXED } from './helpers/berth.js';
import {
  startOtlpReceiver,
  SPAN_KIND,
  type OtlpReceiver,
  type ReceivedSpan,
} from './helpers/otlp-receiver.js';
import { markedProcessesUnder } from './helpers/processes.js';

/** What each test started, stopped after it whatever it asserted. */
const started: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const s of started.splice(0).reverse()) await s.close();
});

async function receiver(): Promise<OtlpReceiver> {
  const r = await startOtlpReceiver();
  started.push(r);
  return r;
}

async function model(): Promise<MockModel> {
  const m = await startMockModel({ scenarios: [] });
  started.push(m);
  return m;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-'));
  started.push({ close: () => rm(dir, { recursive: true, force: true }) });
  return dir;
}

/**
 * A server as `berth serve` makes it: no telemetry passed in, so the core makes its own from the config
 * (tracing when an endpoint is set) and closes it, its spans flushed, when the server closes.
 */
async function serve(
  args: string[],
  env: Record<string, string>,
): Promise<{ server: BerthServer; dataDir: string }> {
  const dataDir = await tempDir();
  const config = testServeConfig(dataDir, await model(), ['--log-level', 'silent', ...args], env);
  const server = await startBerth(config);
  // Closing is idempotent: a test that closed its server to flush the spans closes it again here.
  started.push(server);
  return { server, dataDir };
}

/** A W3C `traceparent` of a sampled span of the caller: its trace id, span id and header. */
function callerSpan(traceId = randomBytes(16).toString('hex')): {
  traceId: string;
  spanId: string;
  header: string;
} {
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

/** Sends one message (with `headers`); returns its seq. */
async function sendMessage(
  base: string,
  id: string,
  text: string,
  headers: Record<string, string>,
): Promise<number> {
  const res = await fetch(`${base}/v1/sessions/${id}/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ events: [{ type: 'user.message', content: [{ type: 'text', text }] }] }),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: { seq: number }[] }).data[0]!.seq;
}

/** Waits for the end of the turn of the message stored at `seq` (its first turn end after it). */
async function turnEnd(base: string, id: string, seq: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const page = (await (await fetch(`${base}/v1/sessions/${id}/events?limit=1000`)).json()) as {
      data: { seq: number; type: string; stop_reason?: { type: string } }[];
    };
    const idle = page.data.find(
      (e) => e.seq > seq && e.type === 'session.status_idle' && e.stop_reason?.type !== 'requires_action',
    );
    if (idle) return;
    if (Date.now() > deadline) throw new Error('the turn did not end');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sends one message (with `headers`) and waits for its turn's end. */
async function turn(base: string, id: string, text: string, headers: Record<string, string>): Promise<void> {
  await turnEnd(base, id, await sendMessage(base, id, text, headers));
}

/** How far two spans' clocks may disagree (each takes its own Date.now() at its start), in ms. */
const CLOCK_SLACK_MS = 5;

/** OTLP's `STATUS_CODE_ERROR`. */
const STATUS_ERROR = 2;

function only(
  spans: readonly ReceivedSpan[],
  predicate: (s: ReceivedSpan) => boolean,
  what: string,
): ReceivedSpan {
  const found = spans.filter(predicate);
  if (found.length !== 1) {
    throw new Error(`${found.length} spans are ${what}; received: ${spans.map((s) => s.name).join(', ')}`);
  }
  return found[0]!;
}

describe('spans sent to OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  it('traces a turn under the request that sent its message, continuing the caller’s traceparent', async () => {
    const collector = await receiver();
    const { server } = await serve([], { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint });
    expect(server.telemetry.tracing).toBe(true);

    const create = callerSpan();
    const id = await createSessionAt(server.url, {}, { traceparent: create.header });
    // Another span of the same caller's trace: the message's request is its child.
    const send = callerSpan(create.traceId);
    await turn(server.url, id, 'hello traces', { traceparent: send.header });
    // Closing the server closes the telemetry it made: what is buffered is flushed to the collector.
    await server.close();
    const spans = collector.spans;

    // Berth's own resource, on every span.
    for (const span of spans) {
      expect(span.resource['service.name'], span.name).toBe('berth');
      expect(span.scope, span.name).toBe('berth');
    }

    // The message's request: a server span continuing the caller's trace, under the caller's span.
    const request = only(
      spans,
      (s) => s.name === 'POST /v1/sessions/:id/events' && s.parentSpanId === send.spanId,
      "the message's request",
    );
    expect(request.kind).toBe(SPAN_KIND.server);
    expect(request.traceId).toBe(send.traceId);
    expect(request.attributes).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/sessions/:id/events',
      'http.response.status_code': 200,
      'url.path': `/v1/sessions/${id}/events`,
    });
    // The session's creation: the same trace, under its own caller span.
    const creation = only(
      spans,
      (s) => s.name === 'POST /v1/sessions' && s.traceId === create.traceId,
      "the session's creation",
    );
    expect(creation.parentSpanId).toBe(create.spanId);
    // Requests without a traceparent (the polling above) start traces of their own.
    const polls = spans.filter((s) => s.name === 'GET /v1/sessions/:id/events');
    expect(polls.length).toBeGreaterThan(0);
    for (const poll of polls) {
      expect(poll.traceId).not.toBe(send.traceId);
      expect(poll.parentSpanId).toBeUndefined();
    }

    // The turn runs after the request answered, yet under it: the queue was pumped in its context.
    const turnSpan = only(spans, (s) => s.name === 'berth.turn', 'turns');
    expect(turnSpan.traceId).toBe(send.traceId);
    expect(turnSpan.parentSpanId).toBe(request.spanId);
    expect(turnSpan.attributes).toMatchObject({ 'berth.tenant': 'default', 'berth.session_id': id });
    expect(turnSpan.statusCode).not.toBe(STATUS_ERROR);

    // The cold start of its subprocess, recorded under the turn, and the workspace prepared for it.
    const start = only(spans, (s) => s.name === 'berth.subprocess.start', 'subprocess starts');
    expect(start.parentSpanId).toBe(turnSpan.spanId);
    expect(start.traceId).toBe(send.traceId);
    expect(start.attributes).toMatchObject({ 'berth.start_kind': 'cold', 'berth.session_id': id });
    const hydrate = only(spans, (s) => s.name === 'berth.hydrate', 'hydrations');
    expect(hydrate.parentSpanId).toBe(turnSpan.spanId);
    expect(hydrate.attributes).toMatchObject({ 'berth.session_id': id });

    // Store calls: client spans with their backend, those of the turn under it.
    const stores = spans.filter((s) => s.name.startsWith('store '));
    expect(stores.length).toBeGreaterThan(0);
    for (const call of stores) {
      expect(call.kind, call.name).toBe(SPAN_KIND.client);
      expect(call.attributes['db.system'], call.name).toBe('sqlite');
    }
    const creates = stores.filter((s) => s.name === 'store create session');
    expect(creates.map((s) => s.parentSpanId)).toContain(creation.spanId);
    const turnAppends = stores.filter((s) => s.name === 'store append events' && s.traceId === send.traceId);
    expect(turnAppends.length).toBeGreaterThan(0);

    // Every span of the session's own work names the session.
    for (const span of spans.filter((s) => s.name.startsWith('berth.'))) {
      expect(span.attributes['berth.session_id'], span.name).toBe(id);
    }
  });

  it('traces a message that waited for the turn before it under its own request, not that turn’s', async () => {
    const collector = await receiver();
    const { server } = await serve([], { OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint });
    const id = await createSessionAt(server.url);
    const first = callerSpan();
    const second = callerSpan();
    // The second arrives while the first turn starts its subprocess: it waits in the queue.
    await sendMessage(server.url, id, 'first', { traceparent: first.header });
    const seq = await sendMessage(server.url, id, 'second', { traceparent: second.header });
    await turnEnd(server.url, id, seq);
    await server.close();
    const spans = collector.spans;

    const turns = spans.filter((s) => s.name === 'berth.turn');
    expect(turns).toHaveLength(2);
    const [firstTurn, secondTurn] = [first, second].map((caller) => {
      const request = only(
        spans,
        (s) => s.name === 'POST /v1/sessions/:id/events' && s.parentSpanId === caller.spanId,
        'the request',
      );
      const own = only(turns, (s) => s.traceId === caller.traceId, "the request's turns");
      expect(own.parentSpanId).toBe(request.spanId);
      return { request, turn: own };
    });
    // The second message did wait: its request was answered before the first turn ended.
    expect(secondTurn!.request.endMs).toBeLessThanOrEqual(firstTurn!.turn.endMs + CLOCK_SLACK_MS);
    expect(secondTurn!.turn.startMs).toBeGreaterThanOrEqual(firstTurn!.turn.endMs - CLOCK_SLACK_MS);
    // The second turn ran in the subprocess the first one started: what it stored is traced under it,
    // and nothing is filed under the first turn after that turn ended.
    const secondAppends = spans.filter(
      (s) => s.name === 'store append events' && s.parentSpanId === secondTurn!.turn.spanId,
    );
    expect(secondAppends.length).toBeGreaterThan(0);
    // A span's times are its start's Date.now() plus a monotonic clock, so two spans may disagree by a
    // millisecond or two: "after the end" leaves that much room (the turn's own last record write may start
    // just before the turn's span ends).
    const late = spans.filter(
      (s) => s.parentSpanId === firstTurn!.turn.spanId && s.startMs > firstTurn!.turn.endMs + CLOCK_SLACK_MS,
    );
    expect(late.map((s) => s.name)).toEqual([]);
  });

  it('posts to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else to the base endpoint’s /v1/traces', () => {
    const flags = ['--port', '0', '--data-dir', '/tmp/x', '--mock-model'];
    const both = parseServeConfig(flags, {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces.example/otlp/spans',
    });
    expect(both.observe.otlpTracesUrl).toBe('http://traces.example/otlp/spans');
    const base = parseServeConfig(flags, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318/' });
    expect(base.observe).toMatchObject({
      otlpEndpoint: 'http://collector.example:4318',
      otlpTracesUrl: 'http://collector.example:4318/v1/traces',
    });
    const none = parseServeConfig(flags, { OTEL_EXPORTER_OTLP_ENDPOINT: '' });
    expect(none.observe).toMatchObject({ otlpEndpoint: null, otlpTracesUrl: null });
    expect(() => parseServeConfig(flags, { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" is not an http\(s\) URL/,
    );
  });
});

describe('without an endpoint', () => {
  beforeAll(async () => {
    // The child processes import the server from dist/, as `berth serve` runs it.
    await access(path.resolve('dist/server.js')).catch(() => {
      throw new Error('dist/server.js is missing: run `npm run build` first');
    });
  });

  /**
   * A server in a child process, as `berth serve` runs (dist/), that answers one request with a
   * `traceparent` and closes; prints whether it traced and which OpenTelemetry files the process loaded.
   */
  async function childServer(env: Record<string, string>): Promise<{ tracing: boolean; loaded: string[] }> {
    const dataDir = await tempDir();
    const script = `
      import { createRequire } from 'node:module';
      const { parseServeConfig } = await import(${JSON.stringify(pathToFileURL(path.resolve('dist/config.js')).href)});
      const { startBerth } = await import(${JSON.stringify(pathToFileURL(path.resolve('dist/server.js')).href)});
      const config = parseServeConfig(
        ['--port', '0', '--data-dir', ${JSON.stringify(dataDir)}, '--mock-model', '--sandbox', 'none',
         '--warm-pool', '0', '--log-level', 'silent'],
        { PATH: process.env.PATH, ...${JSON.stringify(env)} },
      );
      const server = await startBerth(config);
      const res = await fetch(server.url + '/v1/sessions', {
        headers: { traceparent: '00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01' },
      });
      if (res.status !== 200) throw new Error('GET /v1/sessions: ' + res.status);
      const tracing = server.telemetry.tracing;
      await server.close();
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('@opentelemetry'));
      console.log(JSON.stringify({ tracing, loaded }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: path.resolve('.'),
      env: { PATH: process.env.PATH },
      timeout: 30_000,
    });
    return JSON.parse(stdout.trim().split('\n').pop()!) as { tracing: boolean; loaded: string[] };
  }

  const SDK =
    /@opentelemetry\/(sdk-trace-node|sdk-trace-base|exporter-trace-otlp-http|otlp-transformer|resources)\//;

  it('loads no OpenTelemetry SDK and exports nothing; with an endpoint the same server loads it', async () => {
    const off = await childServer({});
    expect(off.tracing).toBe(false);
    expect(off.loaded.filter((f) => SDK.test(f))).toEqual([]);

    // The control: the same child with an endpoint loads the SDK and sends the request's span.
    const collector = await receiver();
    const on = await childServer({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint });
    expect(on.tracing).toBe(true);
    expect(on.loaded.some((f) => SDK.test(f))).toBe(true);
    expect(collector.spans.map((s) => s.name)).toContain('GET /v1/sessions');
  });

  it('in this process: the telemetry does not trace and no tracer provider is registered', async () => {
    const { server } = await serve(UNSANDBOXED.slice(), {});
    expect(server.telemetry.tracing).toBe(false);
    expect(server.telemetry.close).toBeUndefined();
    // The global provider is still the API's no-op one: its spans are not recording.
    const span = trace.getTracer('probe').startSpan('probe');
    expect(span.isRecording()).toBe(false);
    span.end();
  });
});

describe('--agent-telemetry', () => {
  it("gives an agent's CLI the variables of its own telemetry, the owner percent-encoded", () => {
    expect(agentTelemetryEnv(undefined, { tenant: 'acme', id: 'sesn_1' })).toEqual({});
    const env = agentTelemetryEnv('http://collector:4318', { tenant: 'a,b=c %d', id: 'sesn_1' });
    expect(env).toEqual({
      CLAUDE_CODE_ENABLE_TELEMETRY: '1',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_RESOURCE_ATTRIBUTES: 'berth.tenant=a%2Cb%3Dc%20%25d,berth.session_id=sesn_1',
    });
    // A warm spare belongs to no session yet: the tenant only.
    expect(agentTelemetryEnv('http://collector:4318', { tenant: 'acme' }).OTEL_RESOURCE_ATTRIBUTES).toBe(
      'berth.tenant=acme',
    );
    expect(resourceAttributes({ k: 'ü/é' })).toBe('k=%C3%BC%2F%C3%A9');
    expect(resourceAttributes({})).toBe('');
  });

  function refusal(args: string[], env: Record<string, string>): string {
    try {
      parseServeConfig(['--port', '0', '--data-dir', '/tmp/x', '--mock-model', ...args], env);
    } catch (err) {
      if (isBerthError(err) && err.code === 'invalid_config') return err.message;
      throw err;
    }
    throw new Error('the config was accepted');
  }

  it('is refused without an endpoint, and with the bwrap sandbox (the default)', () => {
    expect(refusal(['--agent-telemetry', '--sandbox', 'none'], {})).toMatch(
      /--agent-telemetry needs OTEL_EXPORTER_OTLP_ENDPOINT/,
    );
    // A traces endpoint alone is no place for the agents' metrics and logs.
    expect(
      refusal(['--agent-telemetry', '--sandbox', 'none'], {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces',
      }),
    ).toMatch(/needs OTEL_EXPORTER_OTLP_ENDPOINT/);
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(refusal(['--agent-telemetry'], endpoint)).toMatch(/--agent-telemetry needs --sandbox none/);
    expect(refusal(['--agent-telemetry', '--sandbox', 'bwrap'], endpoint)).toMatch(/needs --sandbox none/);
    expect(refusal(['--agent-telemetry'], { ...endpoint, BERTH_SANDBOX: 'bwrap' })).toMatch(
      /needs --sandbox none/,
    );
    const accepted = parseServeConfig(
      ['--port', '0', '--data-dir', '/tmp/x', '--mock-model', '--agent-telemetry', '--sandbox', 'none'],
      endpoint,
    );
    expect(accepted.observe).toMatchObject({ agentTelemetry: true, otlpEndpoint: 'http://collector:4318' });
    // Off unless asked for, even with an endpoint.
    const plain = parseServeConfig(['--port', '0', '--data-dir', '/tmp/x', '--mock-model'], endpoint);
    expect(plain.observe.agentTelemetry).toBe(false);
  });

  it("puts the variables in the environment of a session's claude process, with its session id", async () => {
    const collector = await receiver();
    const { server, dataDir } = await serve(['--agent-telemetry', ...UNSANDBOXED], {
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
    });
    const id = await createSessionAt(server.url);
    await turn(server.url, id, 'hello agent telemetry', {});
    const procs = await markedProcessesUnder(path.join(dataDir, 'tenants'));
    const agent = procs.find((p) =>
      p.env.some((v) => v.startsWith('OTEL_RESOURCE_ATTRIBUTES=') && v.includes(`berth.session_id=${id}`)),
    );
    expect(agent, 'no claude process carries the session id').toBeDefined();
    expect(agent!.env).toContain('CLAUDE_CODE_ENABLE_TELEMETRY=1');
    expect(agent!.env).toContain(`OTEL_EXPORTER_OTLP_ENDPOINT=${collector.endpoint}`);
    expect(agent!.env).toContain('OTEL_EXPORTER_OTLP_PROTOCOL=http/json');
    expect(agent!.env).toContain(`OTEL_RESOURCE_ATTRIBUTES=berth.tenant=default,berth.session_id=${id}`);
    // And the CLI uses them: its own logs or metrics reach the collector, tagged with the session.
    const deadline = Date.now() + 20_000;
    const tagged = (): boolean =>
      collector.exports.some(
        (e) => e.path !== '/v1/traces' && e.resources.some((r) => r['berth.session_id'] === id),
      );
    while (!tagged() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(tagged(), `exports received: ${collector.exports.map((e) => e.path).join(', ')}`).toBe(true);
  });
});
