/**
 * Graceful drain on SIGTERM, as an operator sees it: `berth serve` as a child process is signalled during
 * a turn; `/readyz` turns 503 and new sessions are refused, the running turn finishes, the session is
 * suspended and the process exits 0 leaving no subprocess. The next server on the data dir hydrates it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../src/session/events.js';
import { startMockModel, type Scenario } from '../src/testing/index.js';
import { markedProcessesUnder } from './helpers/processes.js';
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
    const match = /listening on (http:\/\/\S+)/.exec(server.output);
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

async function history(base: string, id: string): Promise<StoredEvent[]> {
  return (await api(base, 'GET', `/v1/sessions/${id}/events?limit=1000`)).body.data as StoredEvent[];
}

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
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
      const id = (await api(first.url, 'POST', '/v1/sessions', { agent: { allowed_tools: ['Bash'] } })).body
        .id as string;
      const idle = (await api(first.url, 'POST', '/v1/sessions', {})).body.id as string;
      await api(first.url, 'POST', `/v1/sessions/${id}/events`, {
        events: [{ type: 'user.message', content: 'write the plan slowly' }],
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
      const refused = await api(first.url, 'POST', '/v1/sessions', {});
      expect(refused.status).toBe(503);
      expect(refused.body.error.code).toBe('host_draining');
      expect(await first.exit).toBe(0);
      expect(first.output).toMatch(/drained: 2 session\(s\) suspended, 0 failed, 0 turn\(s\) stopped/);
      expect(await markedProcessesUnder(dataDir)).toEqual([]);

      const second = await serve(dataDir, model.url);
      children.push(second.child);
      for (const sid of [id, idle]) {
        expect((await api(second.url, 'GET', `/v1/sessions/${sid}`)).body.status).toBe('suspended');
      }
      const events = await history(second.url, id);
      // Nothing lost: the turn that was running when the signal came finished, then the session was suspended.
      const texts = events.flatMap((e) => (e.type === 'agent.message' ? e.content.map((b) => b.text) : []));
      expect(texts).toContain('The plan is written, slowly.');
      expect(events.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'host_draining' });

      const sent = await api(second.url, 'POST', `/v1/sessions/${id}/events`, {
        events: [{ type: 'user.message', content: 'read the plan' }],
      });
      expect(sent.status).toBe(202);
      let after: StoredEvent[] = [];
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
});
