/**
 * `berth router` in-process, against real HTTP servers standing in as hosts, registered in the real
 * shared store (PostgreSQL and Redis, each in its own schema or key prefix) with `coordination.heartbeat`:
 * the routing rules and the proxy's mechanics. The full multi-host test with real `berth serve` hosts is
 * elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BerthError, type ErrorCode } from '../src/errors.js';
import { memoryLogger } from '../src/observe/logger.js';
import { rankHosts, routingKey } from '../src/placement.js';
import { parseRouterConfig, type RouterConfig } from '../src/router/router-config.js';
import { startRouter, type RouterServer } from '../src/router/start-router.js';
import type { Coordination, HostState } from '../src/stores/coordination.js';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { postgresBackend, redisBackend, type Backend, type TestStore } from './helpers/backends.js';
import { eventually } from './helpers/wait.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void;
type Seen = { url: string; headers: http.IncomingHttpHeaders; body: string };

/** An HTTP server standing in for a host: records what it is sent, answers with `handler`. */
class StandIn {
  readonly seen: Seen[] = [];
  handler: Handler = (req, res) => json(res, 200, { host: this.id, url: req.url });
  private constructor(
    readonly id: string,
    readonly server: http.Server,
  ) {}

  static async start(id: string): Promise<StandIn> {
    const server = http.createServer();
    const host = new StandIn(id, server);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        host.seen.push({ url: req.url!, headers: req.headers, body });
        host.handler(req, res, body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return host;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

/** A host's error answer, as a host writes it. */
const envelope = (code: ErrorCode): unknown => new BerthError(code, code).toJSON();

/** The Berth code of an error answer (Managed Agents' envelope keeps it in `error.details`). */
const codeOf = (body: unknown): string | undefined =>
  (body as { error?: { details?: { error_code?: string } } }).error?.details?.error_code;

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const KEY = 'alpha-key-12345';

function routerConfig(store: string, keys = false): RouterConfig {
  const args = ['--store', store, '--port', '0', '--refresh', '100', '--max-body', '64KiB'];
  return parseRouterConfig(args, keys ? { BERTH_ROUTER_API_KEYS: `alpha:${KEY}` } : {});
}

for (const backend of [postgresBackend(), redisBackend()] as Backend[]) {
  describe(`berth router on ${backend.name}`, () => {
    let store: TestStore;
    let stores: Stores;
    let coordination: Coordination | undefined;
    let router: RouterServer;
    let keyed: RouterServer;
    const hosts: StandIn[] = [];
    // Warnings and failures the routers log: none is expected.
    const { log: routerLog, lines: logs } = memoryLogger('warn');

    beforeAll(async () => {
      store = await backend.create();
      stores = await openStores(store.url);
      coordination = stores.coordination;
      if (!coordination) throw new Error(`${backend.name}: openStores gives no coordination`);
      for (const id of ['host-a', 'host-b', 'host-c']) hosts.push(await StandIn.start(id));
      router = await startRouter(routerConfig(store.url), { log: routerLog });
      keyed = await startRouter(routerConfig(store.url, true), { log: routerLog });
    });

    afterAll(async () => {
      await router?.close();
      await keyed?.close();
      await Promise.all(hosts.map((h) => h.close()));
      await stores?.close();
      await store?.cleanup();
    });

    /** Registers the hosts as given (every other entry removed) and has both routers read the list. */
    async function register(
      entries: Array<{ host: { id: string; url: string }; state?: HostState; slotsFree?: number }>,
    ): Promise<void> {
      for (const known of await coordination!.hosts()) await coordination!.removeHost(known.id);
      for (const { host, state = 'ready', slotsFree = 8 } of entries) {
        await coordination!.heartbeat({ id: host.id, url: host.url, state, capacity: 8, slotsFree }, 60_000);
      }
      // refresh() joins a read already in flight (the 100 ms timer's), which may have begun before the
      // changes above: the second read begins after it, so it sees them.
      for (const directory of [router.directory, keyed.directory]) {
        await directory.refresh();
        await directory.refresh();
      }
    }

    const hashOrder = async (tenant: string, id: string): Promise<string[]> =>
      rankHosts(routingKey(tenant, id), await coordination!.hosts()).map((h) => h.id);

    beforeEach(async () => {
      for (const h of hosts) {
        h.seen.length = 0;
        h.handler = (req, res) => json(res, 200, { host: h.id, url: req.url });
      }
      await register(hosts.map((host) => ({ host })));
    });

    it('sends a session and everything below it to the first host of its hash order, path and query intact', async () => {
      const [first] = await hashOrder('default', 'sess_route1');
      for (const path of [
        '/v1/sessions/sess_route1',
        '/v1/sessions/sess_route1/events?limit=2&order=desc&types[]=agent.message',
        '/v1/sessions/sess_route1/events/stream?after=3',
      ]) {
        const res = await fetch(`${router.url}${path}`);
        expect(res.status).toBe(200);
        expect(res.headers.get('x-berth-host')).toBe(first);
        expect(await res.json()).toEqual({ host: first, url: path });
      }
    });

    it('prefers the live holder of the lease, and falls back to the hash order when it is gone', async () => {
      const order = await hashOrder('default', 'sess_leased');
      const holder = order[2]!;
      const acquired = await coordination!.acquire(routingKey('default', 'sess_leased'), holder, 60_000);
      expect(acquired.acquired).toBe(true);
      const res = await fetch(`${router.url}/v1/sessions/sess_leased`);
      expect(res.headers.get('x-berth-host')).toBe(holder);
      // The holder's entry is gone (it died): the lease names no live host, so the hash order decides.
      await register(hosts.filter((h) => h.id !== holder).map((host) => ({ host })));
      const after = await fetch(`${router.url}/v1/sessions/sess_leased`);
      expect(after.headers.get('x-berth-host')).toBe(order.filter((id) => id !== holder)[0]);
      // Released: not live any more.
      await register(hosts.map((host) => ({ host })));
      expect(
        await coordination!.release(routingKey('default', 'sess_leased'), holder, acquired.lease.token),
      ).toBe(true);
      const released = await fetch(`${router.url}/v1/sessions/sess_leased`);
      expect(released.headers.get('x-berth-host')).toBe(order[0]);
    });

    it('gives up on a host that stops heartbeating before it answers: a read goes to the next host, a write is not resent', async () => {
      const [first, second] = await hashOrder('default', 'sess_frozen');
      const frozen = hosts.find((h) => h.id === first)!;
      // A frozen host accepts connections and never answers.
      frozen.handler = () => undefined;
      const read = fetch(`${router.url}/v1/sessions/sess_frozen`);
      const write = fetch(`${router.url}/v1/sessions/sess_frozen/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"events":[]}',
      });
      await eventually(() => frozen.seen.length === 2, 'both requests to reach the frozen host');
      // Its heartbeat stops: the next read of the list no longer has it.
      await coordination!.removeHost(frozen.id);
      const answered = await read;
      expect(answered.status).toBe(200);
      expect(answered.headers.get('x-berth-host')).toBe(second);
      const refused = await write;
      expect(refused.status).toBe(503);
      expect(codeOf(await refused.json())).toBe('not_ready');
    });

    it('gives a new session an id as a host would and routes it by that id', async () => {
      const res = await fetch(`${router.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"agent":"agent_r1","environment_id":"env_r1","title":"t"}',
      });
      const hostId = res.headers.get('x-berth-host')!;
      const seen = hosts.find((h) => h.id === hostId)!.seen[0]!;
      const { id, ...rest } = JSON.parse(seen.body) as Record<string, unknown>;
      expect(id).toMatch(/^sess_[A-Za-z0-9_-]{20}$/);
      expect(rest).toEqual({ agent: 'agent_r1', environment_id: 'env_r1', title: 't' });
      expect(seen.headers['content-length']).toBe(String(Buffer.byteLength(seen.body)));
      expect((await hashOrder('default', id as string))[0]).toBe(hostId);
      // The client's own id is kept and routed by, the body as it was sent.
      const mine = '{"id":"mine-1","agent":"agent_r1","environment_id":"env_r1"}';
      const own = await fetch(`${router.url}/v1/sessions`, { method: 'POST', body: mine });
      const ownHost = own.headers.get('x-berth-host');
      expect(ownHost).toBe((await hashOrder('default', 'mine-1'))[0]);
      expect(hosts.find((h) => h.id === ownHost)!.seen.at(-1)!.body).toBe(mine);
    });

    it('forwards a body that is not JSON as it is, for the host to refuse', async () => {
      for (const h of hosts) h.handler = (_req, res) => json(res, 400, envelope('invalid_json'));
      const res = await fetch(`${router.url}/v1/sessions`, { method: 'POST', body: '{nope' });
      expect(res.status).toBe(400);
      const hostId = res.headers.get('x-berth-host');
      expect(hosts.find((h) => h.id === hostId)!.seen[0]!.body).toBe('{nope');
    });

    it('sends what no session owns to the ready host with the most free slots, never a draining one', async () => {
      const [a, b, c] = hosts as [StandIn, StandIn, StandIn];
      await register([
        { host: a, slotsFree: 2 },
        { host: b, slotsFree: 5 },
        { host: c, slotsFree: 9, state: 'draining' },
      ]);
      // Agents and environments live in the store's catalog, which every host reads.
      for (const [method, path] of [
        ['POST', '/v1/tasks'],
        ['POST', '/v1/groups'],
        ['GET', '/v1/sessions?limit=2'],
        ['POST', '/v1/agents'],
        ['GET', '/v1/environments'],
      ] as const) {
        const res = await fetch(`${router.url}${path}`, {
          method,
          body: method === 'POST' ? '{}' : undefined,
        });
        expect(res.headers.get('x-berth-host')).toBe(b.id);
      }
    });

    it('tries the next host, with the same body, when one is full or draining; passes other 503s on', async () => {
      const order = await hashOrder('default', 'sess_full');
      const [first, second, third] = order.map((id) => hosts.find((h) => h.id === id)!);
      first!.handler = (_req, res) => json(res, 503, envelope('host_full'));
      second!.handler = (_req, res) => json(res, 503, envelope('host_draining'));
      const res = await fetch(`${router.url}/v1/sessions/sess_full/events`, {
        method: 'POST',
        body: '{"events":[]}',
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-berth-host')).toBe(third!.id);
      for (const h of [first!, second!, third!]) expect(h.seen.map((s) => s.body)).toEqual(['{"events":[]}']);
      // Every host full: the client gets the last one's answer.
      third!.handler = (_req, res) => json(res, 503, envelope('host_full'));
      const full = await fetch(`${router.url}/v1/sessions/sess_full`);
      expect(full.status).toBe(503);
      expect(full.headers.get('x-berth-host')).toBe(third!.id);
      expect(codeOf(await full.json())).toBe('host_full');
      // Another 503 is the host's answer to give.
      first!.handler = (_req, res) => json(res, 503, envelope('store_unavailable'));
      const other = await fetch(`${router.url}/v1/sessions/sess_full`);
      expect(other.headers.get('x-berth-host')).toBe(first!.id);
      expect(codeOf(await other.json())).toBe('store_unavailable');
    });

    it('tries the next host when one cannot be reached, and reads the host list again', async () => {
      const dead = { id: 'host-dead', url: `http://127.0.0.1:${await closedPort()}` };
      await register([{ host: dead, slotsFree: 100 }, ...hosts.map((host) => ({ host }))]);
      const res = await fetch(`${router.url}/v1/groups`, { method: 'POST', body: '{}' });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-berth-host')).not.toBe(dead.id);
      // A host that went away after it took the request: a GET goes on to the next host, a POST does not
      // (the host may have acted on it).
      await register(hosts.map((host) => ({ host })));
      const order = await hashOrder('default', 'sess_cut');
      const cut = hosts.find((h) => h.id === order[0])!;
      cut.handler = (req) => req.socket.destroy();
      const get = await fetch(`${router.url}/v1/sessions/sess_cut`);
      expect(get.status).toBe(200);
      expect(get.headers.get('x-berth-host')).toBe(order[1]);
      for (const h of hosts) h.seen.length = 0;
      const post = await fetch(`${router.url}/v1/sessions/sess_cut/events`, { method: 'POST', body: '{}' });
      expect(post.status).toBe(503);
      expect(await post.json()).toMatchObject({
        error: { message: expect.stringMatching(/may have acted/), details: { error_code: 'not_ready' } },
      });
      expect(hosts.map((h) => h.seen.length)).toEqual(hosts.map((h) => (h === cut ? 1 : 0)));
      // Nothing reachable at all: 503 not_ready.
      await register([{ host: dead }]);
      const none = await fetch(`${router.url}/v1/sessions/sess_x`);
      expect(none.status).toBe(503);
      expect(await none.json()).toMatchObject({
        type: 'error',
        error: { type: 'overloaded_error', details: { error_code: 'not_ready' } },
      });
      expect(none.headers.get('x-should-retry')).toBe('true');
    });

    it('asks every host for a task or a group until one has it', async () => {
      const owner = hosts[1]!;
      for (const h of hosts) {
        h.handler = (req, res) =>
          h === owner ? json(res, 200, { id: 'task_1' }) : json(res, 404, envelope('task_not_found'));
      }
      const res = await fetch(`${router.url}/v1/tasks/task_1/artifacts/out.txt`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-berth-host')).toBe(owner.id);
      owner.handler = (_req, res) => json(res, 404, envelope('task_not_found'));
      const missing = await fetch(`${router.url}/v1/groups/grp_nope`, { method: 'DELETE' });
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual(envelope('task_not_found'));
      expect(hosts.every((h) => h.seen.some((s) => s.url === '/v1/groups/grp_nope'))).toBe(true);
    });

    it('streams SSE chunk by chunk, passes Last-Event-ID on, and ends the upstream when the client goes', async () => {
      const [first] = await hashOrder('default', 'sess_sse');
      const host = hosts.find((h) => h.id === first)!;
      let next: (() => void) | undefined;
      let upstreamClosed = false;
      host.handler = (req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let seq = Number(req.headers['last-event-id'] ?? 0);
        const write = (): void => {
          seq++;
          res.write(`id: ${seq}\nevent: tick\ndata: {}\n\n`);
        };
        next = write;
        write();
        res.on('close', () => (upstreamClosed = true));
      };
      const controller = new AbortController();
      const res = await fetch(`${router.url}/v1/sessions/sess_sse/events/stream`, {
        headers: { 'last-event-id': '41' },
        signal: controller.signal,
      });
      expect(res.headers.get('content-type')).toBe('text/event-stream');
      expect(res.headers.get('x-berth-host')).toBe(first);
      expect(host.seen[0]!.headers['last-event-id']).toBe('41');
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      // Lockstep: the host writes the next event only once the client has read the last one, so every
      // event must cross the router alone, unbuffered.
      for (const seq of [42, 43, 44]) {
        let text = '';
        while (!text.includes('\n\n')) text += decoder.decode((await reader.read()).value as Uint8Array);
        expect(text).toBe(`id: ${seq}\nevent: tick\ndata: {}\n\n`);
        next!();
      }
      controller.abort();
      await eventually(() => upstreamClosed, 'the upstream stream to end', { boundMs: 5000, everyMs: 10 });
    });

    it('ends the event streams it relays at once when it closes, without waiting out the grace', async () => {
      const own = await startRouter(routerConfig(store.url), {
        closeGraceMs: 30_000,
        log: routerLog,
      });
      const [first] = await hashOrder('default', 'sess_close');
      let upstreamClosed = false;
      hosts.find((h) => h.id === first)!.handler = (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        res.on('close', () => (upstreamClosed = true));
      };
      const res = await fetch(`${own.url}/v1/sessions/sess_close/events/stream`);
      const reader = res.body!.getReader();
      await reader.read();
      const started = Date.now();
      await own.close();
      expect(Date.now() - started).toBeLessThan(5000);
      await reader.read().catch(() => undefined);
      await eventually(() => upstreamClosed, 'the upstream stream to end', { boundMs: 5000, everyMs: 10 });
    });

    it('removes hop-by-hop headers both ways and adds x-forwarded-for', async () => {
      const [first] = await hashOrder('default', 'sess_hop');
      const host = hosts.find((h) => h.id === first)!;
      host.handler = (_req, res) => {
        res.writeHead(200, {
          'content-type': 'text/plain',
          'proxy-authenticate': 'Basic',
          'x-upstream': 'yes',
        });
        res.end('ok');
      };
      const { port } = new URL(router.url);
      const answer = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request({
          host: '127.0.0.1',
          port,
          path: '/v1/sessions/sess_hop',
          headers: {
            connection: 'keep-alive, x-private',
            'x-private': 'drop',
            'keep-alive': 'timeout=5',
            te: 'trailers',
            'proxy-authorization': 'Basic secret',
            'x-kept': 'kept',
          },
        });
        req.on('response', resolve).on('error', reject).end();
      });
      answer.resume();
      const seen = host.seen[0]!.headers;
      for (const name of ['x-private', 'keep-alive', 'te', 'proxy-authorization'])
        expect(seen[name]).toBeUndefined();
      expect(seen['x-kept']).toBe('kept');
      expect(seen['x-forwarded-for']).toBe('127.0.0.1');
      expect(answer.headers['proxy-authenticate']).toBeUndefined();
      expect(answer.headers['x-upstream']).toBe('yes');
      expect(answer.headers['x-berth-host']).toBe(first);
    });

    it('refuses a body over the limit before any host sees it', async () => {
      const res = await fetch(`${router.url}/v1/sessions/sess_big/events`, {
        method: 'POST',
        body: 'x'.repeat(64 * 1024 + 1),
      });
      expect(res.status).toBe(413);
      const body = (await res.json()) as { request_id: string };
      expect(codeOf(body)).toBe('body_too_large');
      expect(body.request_id).toMatch(/^req_/);
      expect(res.headers.get('request-id')).toBe(body.request_id);
      expect(res.headers.get('x-should-retry')).toBe('false');
      expect(hosts.every((h) => h.seen.length === 0)).toBe(true);
    });

    it('with API keys: 401 without a valid key, and the key picks the tenant routed by', async () => {
      for (const headers of [{}, { authorization: 'Bearer wrong-key-123' }] as Array<
        Record<string, string>
      >) {
        const res = await fetch(`${keyed.url}/v1/sessions/sess_k`, { headers });
        expect(res.status).toBe(401);
        expect(await res.json()).toMatchObject({
          error: { type: 'authentication_error', details: { error_code: 'unauthorized' } },
        });
      }
      expect((await fetch(`${keyed.url}/v1/hosts`)).status).toBe(401);
      expect((await fetch(`${keyed.url}/healthz`)).status).toBe(200);
      const order = await hashOrder('alpha', 'sess_k');
      for (const headers of [{ authorization: `Bearer ${KEY}` }, { 'x-api-key': KEY }] as Array<
        Record<string, string>
      >) {
        const res = await fetch(`${keyed.url}/v1/sessions/sess_k`, { headers });
        expect(res.headers.get('x-berth-host')).toBe(order[0]);
      }
      expect(hosts.flatMap((h) => h.seen).every((s) => s.url === '/v1/sessions/sess_k')).toBe(true);
    });

    it('answers /healthz, /readyz and /v1/hosts itself', async () => {
      expect(await (await fetch(`${router.url}/healthz`)).json()).toEqual({ status: 'ok' });
      const ready = await fetch(`${router.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({ status: 'ready', hosts: { live: 3, ready: 3 } });
      const list = (await (await fetch(`${router.url}/v1/hosts`)).json()) as {
        data: Array<Record<string, unknown>>;
      };
      expect(list.data.map((h) => h.id)).toEqual(['host-a', 'host-b', 'host-c']);
      expect(list.data[0]).toEqual({
        id: 'host-a',
        url: hosts[0]!.url,
        state: 'ready',
        capacity: 8,
        slots_free: 8,
        last_heartbeat_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      });
      await register(hosts.map((host) => ({ host, state: 'draining' as const })));
      const draining = await fetch(`${router.url}/readyz`);
      expect(draining.status).toBe(503);
      expect(await draining.json()).toMatchObject({
        error: { type: 'overloaded_error', details: { error_code: 'not_ready' } },
      });
      const refused = await fetch(`${router.url}/v1/sessions/sess_d`);
      expect(refused.status).toBe(503);
      expect(codeOf(await refused.json())).toBe('not_ready');
      expect(logs).toEqual([]);
    });
  });
}

describe('berth router (the CLI)', () => {
  /** Runs `berth router ARGS` from the sources; resolves with its exit code and what it printed. */
  function cli(args: string[]): { child: ChildProcess; stderr: () => string; exit: Promise<number | null> } {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        "const { main } = await import('./src/cli/main.ts'); process.exitCode = await main(process.argv.slice(1));",
        'router',
        ...args,
      ],
      { env: { PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.resume();
    return { child, stderr: () => stderr, exit: new Promise((resolve) => child.on('exit', resolve)) };
  }

  it('prints one start-up line without the store password, serves, and stops on SIGTERM', async () => {
    const store = await postgresBackend().create();
    const password = 'r0uter-Pa55';
    const url = store.url.replace('postgres://postgres@', `postgres://postgres:${password}@`);
    const run = cli(['--store', url, '--port', '0']);
    try {
      await eventually(() => run.stderr().includes('listening'), 'the start-up line', { boundMs: 20_000 });
      const output = run.stderr();
      // The first line is a JSON log line (stderr is not a TTY here).
      const first = JSON.parse(output.split('\n')[0]!) as { level: string; msg: string };
      expect(first.level).toBe('info');
      expect(first.msg).toMatch(
        /^router listening on http:\/\/127\.0\.0\.1:\d+ \(store postgres:\/\/postgres:\*\*\*@/,
      );
      expect(output).not.toContain(password);
      const address = /listening on (http:\/\/\S+)/.exec(first.msg)![1]!;
      expect(await (await fetch(`${address}/healthz`)).json()).toEqual({ status: 'ok' });
      // No host registered: not ready.
      expect((await fetch(`${address}/readyz`)).status).toBe(503);
      run.child.kill('SIGTERM');
      expect(await run.exit).toBe(0);
    } finally {
      run.child.kill('SIGKILL');
      await store.cleanup();
    }
  });

  it('refuses a store without a host registry with exit code 2, naming PostgreSQL and Redis', async () => {
    const run = cli(['--store', 'sqlite:./x.db']);
    expect(await run.exit).toBe(2);
    expect(run.stderr()).toMatch(/PostgreSQL.*Redis/);
  });
});
