/**
 * Graceful drain on SIGTERM, as an operator sees it: `berth serve` as a child process is signalled during
 * a turn; `/readyz` turns 503 and new sessions are refused, the running turn finishes, the session is
 * suspended and the process exits 0 leaving no subprocess. The next server on the data dir hydrates it.
 * An event stream open through the drain (SIGTERM or Ctrl-C's SIGINT) gets its `session.status_suspended`
 * before it ends, not only after a reconnect.
 * Then the drain's two ends in-process: turns and tasks that end within the grace period are waited for
 * (however long the grace), and a turn that runs past it is stopped before the sessions are suspended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { textOf, type ApiEvent } from './helpers/api-events.js';
import { startMockModel, type Scenario } from '../src/testing/index.js';
import { TestBerth, createSessionAt, sessionBodyAt } from './helpers/berth.js';
import { hostProcesses, markedProcessesUnder } from './helpers/processes.js';
import { SseClient } from './helpers/sse.js';
import { eventually } from './helpers/wait.js';

const BIN = path.resolve('bin/berth.js');

const scenarios: Scenario[] = [
  {
    name: 'slow-write',
    match: { userText: 'write the plan slowly' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'echo drained-safely > plan.txt && echo wrote' } } },
      // Long enough for the signal to land mid-turn, well inside the drain timeout.
      { text: 'The plan is written, slowly.', fault: { chunkDelayMs: 400 } },
    ],
  },
  {
    name: 'read-file',
    match: { userText: 'read the plan' },
    steps: [{ toolUse: { name: 'Bash', input: { command: 'cat plan.txt' } } }, { text: 'Read it.' }],
  },
  {
    name: 'slow-report',
    match: { userText: 'make the report slowly' },
    steps: [{ text: 'The report is made, slowly.', fault: { chunkDelayMs: 400 } }],
  },
  {
    name: 'stall',
    match: { userText: 'stall forever' },
    steps: [{ text: 'never finished', fault: { stallMs: Infinity } }],
  },
];

interface Server {
  child: ChildProcess;
  output: string;
  exit: Promise<number | null>;
  url: string;
}

async function serve(dataDir: string, modelUrl: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--port', '0', '--data-dir', dataDir, '--model-endpoint', modelUrl],
    {
      env: {
        PATH: process.env.PATH,
        HOME: dataDir,
        BERTH_WARM_POOL: '0',
        BERTH_DRAIN_TIMEOUT: '20s',
        BERTH_KILL_GRACE: '1s',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const server: Server = {
    child,
    output: '',
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
    url: '',
  };
  child.stdout.on('data', (c: Buffer) => (server.output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (server.output += c.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const match = /listening on (http:\/\/[\d.:]+)/.exec(server.output);
    if (match) {
      server.url = match[1]!;
      return server;
    }
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`serve did not start:\n${server.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
type Loose = any;

async function api(
  base: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Loose }> {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function history(base: string, id: string): Promise<ApiEvent[]> {
  return (await api(base, 'GET', `/v1/sessions/${id}/events?limit=1000`)).body.data as ApiEvent[];
}

const dirs: string[] = [];
const children: ChildProcess[] = [];
const servers: TestBerth[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.allSettled(servers.map((s) => s.dispose()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('SIGTERM drain', () => {
  it('finishes the running turn, suspends every session, exits 0, and the next host hydrates them', async () => {
    const model = await startMockModel({ scenarios });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-drain-'));
    dirs.push(dataDir);
    try {
      const first = await serve(dataDir, model.url);
      children.push(first.child);
      const id = await createSessionAt(first.url, { allow: ['bash', 'read'] });
      const idle = await createSessionAt(first.url);
      const another = await sessionBodyAt(first.url);
      await api(first.url, 'POST', `/v1/sessions/${id}/events`, {
        events: [{ type: 'user.message', content: [{ type: 'text', text: 'write the plan slowly' }] }],
      });
      await eventually(
        async () => (await history(first.url, id)).some((e) => e.type === 'agent.tool_result'),
        'the tool result',
      );

      first.child.kill('SIGTERM');
      // Polled often: the 503 lasts only as long as the drain.
      await eventually(
        async () => (await fetch(`${first.url}/readyz`)).status === 503,
        '/readyz to turn 503',
        { everyMs: 50 },
      );
      const refused = await api(first.url, 'POST', '/v1/sessions', another);
      expect(refused.status).toBe(503);
      expect(refused.body.error.details.error_code).toBe('host_draining');
      expect(await first.exit).toBe(0);
      expect(first.output).toMatch(/"suspended":2,"failed":0,"stopped_turns":0,"msg":"drained"/);
      expect(await markedProcessesUnder(dataDir)).toEqual([]);

      const second = await serve(dataDir, model.url);
      children.push(second.child);
      for (const sid of [id, idle]) {
        expect((await api(second.url, 'GET', `/v1/sessions/${sid}`)).body.berth.status).toBe('suspended');
      }
      const events = await history(second.url, id);
      // Nothing lost: the turn that was running when the signal came finished, then the session was suspended.
      const texts = events.flatMap((e) => (e.type === 'agent.message' ? [textOf(e.content)] : []));
      expect(texts).toContain('The plan is written, slowly.');
      expect(events.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'host_draining' });

      const sent = await api(second.url, 'POST', `/v1/sessions/${id}/events`, {
        events: [{ type: 'user.message', content: [{ type: 'text', text: 'read the plan' }] }],
      });
      expect(sent.status).toBe(200);
      let after: ApiEvent[] = [];
      await eventually(async () => {
        after = (await history(second.url, id)).filter((e) => e.seq > sent.body.data[0].seq);
        return after.some((e) => e.type === 'session.status_idle');
      }, 'the hydrated turn');
      expect(JSON.stringify(after.find((e) => e.type === 'agent.tool_result'))).toContain('drained-safely');
      const request = model.requests.findLast((r) => r.isMain && r.userText === 'read the plan');
      expect(JSON.stringify(request?.body)).toContain('write the plan slowly');

      second.child.kill('SIGTERM');
      expect(await second.exit).toBe(0);
    } finally {
      await model.close();
    }
  });
  // Ctrl-C is SIGINT, an orchestrator's stop SIGTERM: either way the drain's events reach open streams.
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'sends %s-drain events to open streams before it closes them',
    async (signal) => {
      const model = await startMockModel({ scenarios });
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-drain-'));
      dirs.push(dataDir);
      try {
        const server = await serve(dataDir, model.url);
        children.push(server.child);
        const id = await createSessionAt(server.url);
        const stream = new SseClient(`${server.url}/v1/sessions/${id}/events/stream`);
        expect(await stream.status).toBe(200);
        // The stream subscribes before its response starts (sse.ts): no event is needed to know it listens.
        server.child.kill(signal);
        const suspended = await stream.waitFor((e) => e.type === 'session.status_suspended');
        expect(suspended).toMatchObject({ reason: 'host_draining' });
        await stream.waitForEnd();
        expect(stream.events.at(-1)?.type).toBe('session.status_suspended');
        expect(await server.exit).toBe(0);
      } finally {
        await model.close();
      }
    },
  );
});

describe('the drain, in-process', () => {
  async function start(): Promise<TestBerth> {
    const berth = await TestBerth.start({ scenarios });
    servers.push(berth);
    return berth;
  }

  it('waits for a running turn however long the grace, then suspends every session', async () => {
    const berth = await start();
    const host = berth.server.host;
    const busy = await berth.createSession({ allow: ['bash'] });
    const quiet = await berth.createSession();
    const [sent] = await berth.send(busy, [{ type: 'user.message', content: 'write the plan slowly' }]);
    await eventually(
      () => berth.model.requests.some((r) => r.userText === 'write the plan slowly'),
      'the turn to reach the model',
    );

    // Longer than this test may run: only the turn ending lets the drain go on.
    const result = await host.drain(10 * 60_000);
    expect(result).toEqual({ suspended: 2, failed: 0, stoppedTurns: 0 });
    expect(host.state).toBe('draining');
    const after = (await berth.history(busy)).filter((e) => e.seq > sent!.seq);
    expect(JSON.stringify(after)).toContain('The plan is written, slowly.');
    expect(after.map((e) => e.type)).not.toContain('session.error');
    expect(after.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'host_draining' });
    expect((await berth.history(quiet)).at(-1)).toMatchObject({ type: 'session.status_suspended' });
    const refused = await berth.api('POST', '/v1/sessions', await berth.sessionBody());
    expect(refused.body.error?.details.error_code).toBe('host_draining');
    expect(await hostProcesses(berth.dataDir)).toEqual([]);
  });

  it('waits for a running task however long the grace', async () => {
    const berth = await start();
    const task = await berth.api('POST', '/v1/tasks', { prompt: 'make the report slowly' });
    expect(task.status, JSON.stringify(task.body)).toBe(202);
    await eventually(
      () => berth.model.requests.some((r) => r.userText === 'make the report slowly'),
      'the task to reach the model',
    );
    const result = await berth.server.host.drain(10 * 60_000);
    expect(result).toEqual({ suspended: 0, failed: 0, stoppedTurns: 0 });
    // The task gave its slot back once its process tree was gone; its record follows.
    expect(await hostProcesses(berth.dataDir)).toEqual([]);
    let record = (await berth.api('GET', `/v1/tasks/${task.body.id}`)).body;
    await eventually(async () => {
      record = (await berth.api('GET', `/v1/tasks/${task.body.id}`)).body;
      return record.status !== 'running';
    }, 'the task record to be final');
    expect(record, JSON.stringify(record)).toMatchObject({
      status: 'succeeded',
      result: 'The report is made, slowly.',
    });
    const refused = await berth.api('POST', '/v1/tasks', { prompt: 'make the report slowly' });
    expect(refused.body.error?.details.error_code).toBe('host_draining');
  });

  it('stops a turn that runs past the grace period, then suspends its session', async () => {
    const berth = await start();
    const host = berth.server.host;
    const id = await berth.createSession();
    const [sent] = await berth.send(id, [{ type: 'user.message', content: 'stall forever' }]);
    await eventually(
      () => berth.model.requests.some((r) => r.userText === 'stall forever'),
      'the stalled request',
    );
    const result = await host.drain(200);
    expect(result).toEqual({ suspended: 1, failed: 0, stoppedTurns: 1 });
    const after = (await berth.history(id)).filter((e) => e.seq > sent!.seq);
    expect(after.find((e) => e.type === 'session.error')).toMatchObject({
      error: { code: 'subprocess_stopped' },
    });
    expect(after.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'host_draining' });
    expect(await hostProcesses(berth.dataDir)).toEqual([]);
    await berth.stop();
    expect(host.state).toBe('closed');
  });
});
