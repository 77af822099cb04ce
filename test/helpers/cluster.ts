/**
 * Many hosts on one machine: `berth serve` processes (the built CLI, as a user runs it) sharing one
 * PostgreSQL schema and one S3 (s3rver) bucket, and `berth router` processes in front of them. Each host
 * has its own data dir and port, chosen before it starts (the advertise URL must be known up front).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { ApiEvent } from './api-events.js';
import { S3RVER_ENV } from './backends.js';

const BIN = path.resolve('bin/berth.js');

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  output: string;
  readonly exit: Promise<number | null>;
}

/** A port free now on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function start(name: string, args: string[], env: Record<string, string>, url: string): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    // TMPDIR too: what a host makes there (its sockets' directory, resume dirs) stays in the run's root.
    env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), TMPDIR: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: Proc = {
    name,
    child,
    url,
    output: '',
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  child.stdout.on('data', (c: Buffer) => (proc.output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (proc.output += c.toString()));
  return proc;
}

async function waitForOutput(proc: Proc, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(proc.output)) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null || Date.now() > deadline) {
      throw new Error(`${proc.name}: no ${pattern} in its output:\n${proc.output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ClusterOptions {
  store: string;
  blobStore: string;
  modelEndpoint: string;
  leaseTtl: string;
}

export class Cluster {
  readonly hosts = new Map<string, Proc & { dataDir: string }>();
  readonly routers: Proc[] = [];

  constructor(private readonly options: ClusterOptions) {}

  private get env(): Record<string, string> {
    return { ...S3RVER_ENV };
  }

  /** Starts `berth serve` as host `id` and waits until it listens and has joined. */
  async addHost(id: string, extra: string[] = []): Promise<Proc & { dataDir: string }> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dataDir = await mkdtemp(path.join(os.tmpdir(), `berth-mh-${id}-`));
    const args = [
      'serve',
      ...['--port', String(port), '--data-dir', dataDir],
      ...['--store', this.options.store, '--blob-store', this.options.blobStore],
      ...['--model-endpoint', this.options.modelEndpoint],
      ...['--advertise-url', url, '--host-id', id, '--lease-ttl', this.options.leaseTtl],
      ...['--sandbox', 'none', '--warm-pool', '0', '--kill-grace', '1s'],
      ...extra,
    ];
    const proc = Object.assign(start(id, args, this.env, url), { dataDir });
    this.hosts.set(id, proc);
    await waitForOutput(proc, /multi-host: host/);
    return proc;
  }

  /** Starts `berth router` and waits until it listens. */
  async addRouter(): Promise<Proc> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = start(
      `router-${this.routers.length}`,
      ['router', '--port', String(port), '--store', this.options.store, '--refresh', '200'],
      this.env,
      url,
    );
    this.routers.push(proc);
    await waitForOutput(proc, /listening/);
    return proc;
  }

  host(id: string): Proc & { dataDir: string } {
    const proc = this.hosts.get(id);
    if (!proc) throw new Error(`no host ${id}`);
    return proc;
  }

  /** Kills every process (SIGCONT first, for a stopped one) and removes the data dirs. */
  async close(): Promise<void> {
    const all = [...this.hosts.values(), ...this.routers];
    for (const proc of all) {
      if (proc.child.exitCode === null && proc.child.signalCode === null) {
        proc.child.kill('SIGCONT');
        proc.child.kill('SIGTERM');
      }
    }
    await Promise.all(
      all.map((proc) =>
        Promise.race([proc.exit, new Promise((r) => setTimeout(r, 20_000))]).then(() => {
          if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
        }),
      ),
    );
    await Promise.all(all.map((p) => p.exit));
    for (const host of this.hosts.values()) await rm(host.dataDir, { recursive: true, force: true });
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
export interface Answer<T = any> {
  status: number;
  body: T;
  host: string | null;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as Answer
export async function call<T = any>(
  base: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<Answer<T>> {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed as T, host: res.headers.get('x-berth-host') };
}

/** What `POST /v1/sessions` names: an agent and an environment. */
export interface SessionSource {
  agent: string;
  environment_id: string;
}

/**
 * An agent and an environment, made through `base`. They live in the store's catalog, so a session of
 * them can be created through any host or router. The agent has the toolset (the scripted model tells
 * the main conversation by its tools), each tool asking before it runs.
 */
export async function sessionSource(base: string): Promise<SessionSource> {
  const agent = await call<{ id: string }>(base, 'POST', '/v1/agents', {
    name: 'multi-host',
    model: 'claude-sonnet-4-5',
    tools: [
      { type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_ask' } } },
    ],
  });
  if (agent.status !== 200) throw new Error(`create agent: ${agent.status} ${JSON.stringify(agent.body)}`);
  const env = await call<{ id: string }>(base, 'POST', '/v1/environments', {
    name: 'multi-host',
    config: { type: 'cloud' },
  });
  if (env.status !== 200) throw new Error(`create environment: ${env.status} ${JSON.stringify(env.body)}`);
  return { agent: agent.body.id, environment_id: env.body.id };
}

/** Every event of the session, oldest first (all pages). */
export async function history(base: string, id: string): Promise<ApiEvent[]> {
  const events: ApiEvent[] = [];
  let page: string | null = null;
  do {
    const query: string = `?limit=500${page ? `&page=${encodeURIComponent(page)}` : ''}`;
    const res = await call<{ data: ApiEvent[]; next_page: string | null }>(
      base,
      'GET',
      `/v1/sessions/${id}/events${query}`,
    );
    if (res.status !== 200) throw new Error(`history: ${res.status} ${JSON.stringify(res.body)}`);
    events.push(...res.body.data);
    page = res.body.next_page;
  } while (page);
  return events;
}

/** Sends a message and waits for the turn's last `session.status_idle`; returns the turn's events. */
export async function turn(
  base: string,
  id: string,
  content: string,
  timeoutMs = 90_000,
): Promise<ApiEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const sent = await call(base, 'POST', `/v1/sessions/${id}/events`, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: content }] }],
    });
    if (sent.status === 200) {
      const after = (sent.body.data[0] as ApiEvent).seq;
      while (Date.now() < deadline) {
        const events = (await history(base, id)).filter((e) => e.seq > after);
        if (
          events.some((e) => e.type === 'session.status_idle' && e.stop_reason.type !== 'requires_action')
        ) {
          return events;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`turn ${JSON.stringify(content)} on ${id}: no status_idle in ${timeoutMs} ms`);
    }
    // A session between hosts (a lease not yet expired) answers 503 or 409 for a moment.
    if (![503, 409].includes(sent.status) || Date.now() > deadline) {
      throw new Error(`send to ${id}: ${sent.status} ${JSON.stringify(sent.body)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
