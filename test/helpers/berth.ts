/**
 * A Berth server for one test file: its own data dir, the real `claude` subprocess, and a scripted
 * model that the test controls.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseServeConfig, type ServeConfig } from '../../src/config.js';
import type { StoredEvent } from '../../src/session/events.js';
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
  /** Environment variables the server reads (its own, not the agents'), e.g. `ANTHROPIC_API_KEY`. */
  env?: Record<string, string>;
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
    const model = options.model ?? (await startMockModel({ scenarios: options.scenarios ?? [] }));
    const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'berth-test-')));
    const config = testServeConfig(dataDir, model, options.args, options.env);
    try {
      const server = await startBerth(config, { log: () => undefined });
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

  async createSession(
    body: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ): Promise<string> {
    const res = await this.api('POST', '/v1/sessions', body, headers);
    if (res.status !== 201) throw new Error(`create session: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.id as string;
  }

  async send(id: string, events: unknown[], headers: Record<string, string> = {}): Promise<StoredEvent[]> {
    const res = await this.api('POST', `/v1/sessions/${id}/events`, { events }, headers);
    if (res.status !== 202) throw new Error(`send: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.data as StoredEvent[];
  }

  async history(id: string, headers: Record<string, string> = {}): Promise<StoredEvent[]> {
    const res = await this.api('GET', `/v1/sessions/${id}/events?limit=1000`, undefined, headers);
    if (res.status !== 200) throw new Error(`history: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body.data as StoredEvent[];
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
  async turn(id: string, content: string, timeoutMs = 60_000): Promise<StoredEvent[]> {
    const [sent] = await this.send(id, [{ type: 'user.message', content }]);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.api('GET', `/v1/sessions/${id}/events?after=${sent!.seq}&limit=1000`);
      if (res.status !== 200) throw new Error(`events: ${res.status} ${JSON.stringify(res.body)}`);
      const events = res.body.data as StoredEvent[];
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
export function replyTexts(events: readonly StoredEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === 'agent.message'
      ? [e.content.map((b) => (b.type === 'text' ? String(b.text) : '')).join('')]
      : [],
  );
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
