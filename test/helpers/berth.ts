/**
 * A Berth server for one test file: its own data dir, the real `claude` subprocess, and a scripted
 * model that the test controls.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeTelemetry, type Telemetry } from '../../src/observe/telemetry.js';
import { parseServeConfig, type ServeConfig } from '../../src/config.js';
import { textOf, type ApiEvent } from './api-events.js';
import { startBerth, type BerthServer } from '../../src/server.js';
import { startMockModel, type MockModel, type Scenario } from '../../src/testing/index.js';
import { SseClient } from './sse.js';

export interface TestBerthOptions {
  /** Extra `berth serve` flags. */
  args?: string[];
  /** Reuse a data dir (to restart a server on the same state). */
  dataDir?: string;
  /** Reuse a scripted model. */
  model?: MockModel;
  scenarios?: Scenario[];
  /**
   * The token counts the scripted model reports (see `MockModelOptions.usage`); ignored with `model`.
   * @default 'none' (a scripted turn uses no tokens and costs nothing)
   */
  modelUsage?: 'none' | 'estimate';
  /** Environment variables the server reads (its own, not the agents'), e.g. `ANTHROPIC_API_KEY`. */
  env?: Record<string, string>;
  /** Where the server logs and counts. @default quiet (a silent log, its own metrics) */
  telemetry?: Telemetry;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export class TestBerth {
  private constructor(
    readonly server: BerthServer,
    readonly model: MockModel,
    readonly dataDir: string,
    private readonly ownsModel: boolean,
    private readonly ownsDataDir: boolean,
  ) {}

  static async start(options: TestBerthOptions = {}): Promise<TestBerth> {
    const model =
      options.model ??
      (await startMockModel({ scenarios: options.scenarios ?? [], usage: options.modelUsage ?? 'none' }));
    const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'berth-test-')));
    const config = testServeConfig(dataDir, model, options.args, options.env);
    try {
      const server = await startBerth(config, { telemetry: options.telemetry ?? makeTelemetry() });
      return new TestBerth(server, model, dataDir, !options.model, !options.dataDir);
    } catch (err) {
      // A server that refused to start (a test of bad config) must not leave its model or data dir.
      if (!options.model) await model.close();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  get url(): string {
    return this.server.url;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as ApiResponse
  async api<T = any>(
    method: string,
    route: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiResponse<T>> {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
    const res = await fetch(`${this.url}${route}`, init);
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body: parsed as T, headers: res.headers };
  }

  private readonly resources = new Map<string, string>();

  /** Creates (once per tenant and body) an agent or environment, and returns its id. */
  private async resource(kind: 'agents' | 'environments', body: object, headers: Record<string, string>) {
    const key = `${kind} ${JSON.stringify(headers)} ${JSON.stringify(body)}`;
    const known = this.resources.get(key);
    if (known) return known;
    const res = await this.api('POST', `/v1/${kind}`, body, headers);
    if (res.status !== 200) throw new Error(`create ${kind}: ${res.status} ${JSON.stringify(res.body)}`);
    this.resources.set(key, res.body.id as string);
    return res.body.id as string;
  }

  /** An agent of `spec` (see {@link SessionSpec}); made once per tenant and spec. */
  agent(spec: AgentSpec = {}, headers: Record<string, string> = {}): Promise<string> {
    return this.resource('agents', agentBody(spec), headers);
  }

  /** An environment of `spec`; made once per tenant and spec. */
  environment(spec: EnvironmentSpec = {}, headers: Record<string, string> = {}): Promise<string> {
    return this.resource('environments', environmentBody(spec), headers);
  }

  /** Creates a session of an agent and environment made from `spec`; returns its id. */
  async createSession(spec: SessionSpec = {}, headers: Record<string, string> = {}): Promise<string> {
    const res = await this.api('POST', '/v1/sessions', await this.sessionBody(spec, headers), headers);
    if (res.status !== 200) throw new Error(`create session: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  }

  /** The body of `POST /v1/sessions` for `spec`, its agent and environment made first. */
  async sessionBody(
    spec: SessionSpec = {},
    headers: Record<string, string> = {},
  ): Promise<Record<string, unknown>> {
    const { id, title, metadata, budget, ...rest } = spec;
    return {
      agent: await this.agent(rest, headers),
      environment_id: await this.environment(rest, headers),
      ...(id !== undefined && { id }),
      ...(title !== undefined && { title }),
      ...(metadata !== undefined && { metadata }),
      ...(budget !== undefined && { budget }),
    };
  }

  /** Sends events; a `user.message` with a string `content` sends it as one text block. */
  async send(id: string, events: unknown[], headers: Record<string, string> = {}): Promise<ApiEvent[]> {
    const body = { events: events.map(withBlocks) };
    const res = await this.api('POST', `/v1/sessions/${id}/events`, body, headers);
    if (res.status !== 200) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.data as ApiEvent[];
  }

  /** Every event of the session, oldest first, read page by page. */
  async history(id: string, headers: Record<string, string> = {}): Promise<ApiEvent[]> {
    const events: ApiEvent[] = [];
    let page: string | null = null;
    do {
      const query: string = `?limit=1000${page ? `&page=${encodeURIComponent(page)}` : ''}`;
      const res = await this.api('GET', `/v1/sessions/${id}/events${query}`, undefined, headers);
      if (res.status !== 200) throw new Error(`history: ${res.status} ${JSON.stringify(res.body)}`);
      events.push(...(res.body.data as ApiEvent[]));
      page = res.body.next_page as string | null;
    } while (page);
    return events;
  }

  stream(
    id: string,
    options: { after?: number; lastEventId?: number; headers?: Record<string, string> } = {},
  ): SseClient {
    const query = options.after === undefined ? '' : `?after=${options.after}`;
    const headers = { ...options.headers };
    if (options.lastEventId !== undefined) headers['last-event-id'] = String(options.lastEventId);
    return new SseClient(`${this.url}/v1/sessions/${id}/events/stream${query}`, headers);
  }

  /** Sends a message and waits for the turn's final `session.status_idle` (not a requires_action pause). */
  async turn(id: string, content: string, timeoutMs = 60_000): Promise<ApiEvent[]> {
    const [sent] = await this.send(id, [{ type: 'user.message', content }]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = (await this.history(id)).filter((e) => e.seq > sent!.seq);
      const idle = events.find(
        (e) => e.type === 'session.status_idle' && e.stop_reason.type !== 'requires_action',
      );
      if (idle) return events.filter((e) => e.seq <= idle.seq);
      if (Date.now() > deadline)
        throw new Error(`turn did not finish: ${events.map((e) => e.type).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the server (sessions stay resumable); keeps the data dir and model unless `dispose`. */
  async stop(): Promise<void> {
    await this.server.close();
  }

  async dispose(): Promise<void> {
    await this.server.close();
    if (this.ownsModel) await this.model.close();
    if (this.ownsDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** The text of `agent.message` events. */
export function replyTexts(events: readonly ApiEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'agent.message' ? [textOf(e.content)] : []));
}

/**
 * Creates a session at any Berth (a `berth serve` a test started, a router) the way TestBerth does: an
 * agent and an environment of `spec` first. Returns the session's id.
 */
export async function createSessionAt(
  base: string,
  spec: SessionSpec = {},
  headers: Record<string, string> = {},
): Promise<string> {
  const session = await postAt(base, '/v1/sessions', await sessionBodyAt(base, spec, headers), headers);
  return session.id;
}

/** The body of `POST /v1/sessions` at `base` for `spec`, its agent and environment made there first. */
export async function sessionBodyAt(
  base: string,
  spec: SessionSpec = {},
  headers: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const { id, title, metadata, budget, ...rest } = spec;
  const agent = await postAt(base, '/v1/agents', agentBody(rest), headers);
  const environment = await postAt(base, '/v1/environments', environmentBody(rest), headers);
  return {
    agent: agent.id,
    environment_id: environment.id,
    ...(id !== undefined && { id }),
    ...(title !== undefined && { title }),
    ...(metadata !== undefined && { metadata }),
    ...(budget !== undefined && { budget }),
  };
}

async function postAt(
  base: string,
  route: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<{ id: string }> {
  const res = await fetch(`${base}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const parsed = (await res.json()) as { id: string };
  if (res.status !== 200) throw new Error(`POST ${route}: ${res.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

/** An agent for a test: which toolset tools run without asking (`allow`, API names), the rest ask. */
export interface AgentSpec {
  /** Toolset tools that run without a confirmation (`bash`, `write`, ...); every other asks. */
  allow?: string[];
  /** Toolset tools the agent has; all eight when absent. */
  tools?: string[];
  system?: string;
  model?: string;
}

export interface EnvironmentSpec {
  pattern?: 'long-running' | 'hybrid' | 'ephemeral';
  /** Hosts the agent may reach (a limited network); the host's default when absent. */
  network?: string[];
}

export interface SessionSpec extends AgentSpec, EnvironmentSpec {
  id?: string;
  title?: string;
  metadata?: Record<string, string>;
  budget?: unknown;
}

const TOOLSET = ['bash', 'read', 'write', 'edit', 'glob', 'grep', 'web_fetch', 'web_search'];

function agentBody(spec: AgentSpec): Record<string, unknown> {
  const tools = spec.tools ?? TOOLSET;
  const configs = TOOLSET.map((name) => ({
    name,
    enabled: tools.includes(name),
    permission_policy: { type: spec.allow?.includes(name) ? 'always_allow' : 'always_ask' },
  }));
  return {
    name: 'test agent',
    model: spec.model ?? 'claude-sonnet-4-5',
    ...(spec.system !== undefined && { system: spec.system }),
    tools: [{ type: 'agent_toolset_20260401', configs }],
  };
}

function environmentBody(spec: EnvironmentSpec): Record<string, unknown> {
  const networking = spec.network && { type: 'limited', allowed_hosts: spec.network };
  const config = {
    type: 'cloud',
    ...(spec.pattern && { pattern: spec.pattern }),
    ...(networking && { networking }),
  };
  return { name: 'test', config };
}

function withBlocks(event: unknown): unknown {
  const e = event as { type?: unknown; content?: unknown };
  if (e.type === 'user.message' && typeof e.content === 'string') {
    return { ...e, content: [{ type: 'text', text: e.content }] };
  }
  return event;
}

/** Flags of an unsandboxed host: the tests of task spares (which sandboxed hosts do not keep) need one. */
export const UNSANDBOXED: readonly string[] = ['--sandbox', 'none'];

/** What a test server runs with: its own data dir, the test's scripted model, a short kill grace, no spares. */
export function testServeConfig(
  dataDir: string,
  model: MockModel,
  args: readonly string[] = [],
  env: Record<string, string> = {},
): ServeConfig {
  return parseServeConfig(
    [
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--model-endpoint',
      model.url,
      '--kill-grace',
      '1s',
      // Tests that want spares ask for them; the rest should not pay for prewarming.
      '--warm-pool',
      '0',
      ...args,
    ],
    { PATH: process.env.PATH, ...env },
  );
}
