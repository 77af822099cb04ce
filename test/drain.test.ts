/**
 * Graceful drain on SIGTERM, as an operator sees it: `berth serve` as a child process is signalled during
 * a turn (its tool waits for a file the test writes only once the drain began, so the signal provably
 * lands mid-turn); `/readyz` turns 503 and new sessions are refused, the running turn finishes, the
 * session is suspended and the process exits 0 leaving no subprocess. The next server on the data dir
 * hydrates it.
 * An event stream open through the drain (SIGTERM or Ctrl-C's SIGINT) gets its `session.status_suspended`
 * before it ends, not only after a reconnect.
 * Then the drain's two ends in-process: turns and tasks that end within the grace period are waited for
 * (however long the grace), and a turn that runs past it is stopped before the sessions are suspended.
 * The emergency paths (a second signal, the timeout running out, a failed suspension) are in
 * drain-emergency.test.ts.
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { textOf, type ApiEvent } from './helpers/api-events.js';
import { startMockModel, type Scenario } from '../src/testing/index.js';
import { TestBerth, createSessionAt, sessionBodyAt } from './helpers/berth.js';
import { hostProcesses, markedProcessesUnder } from './helpers/processes.js';
import { api, history, killServeProcesses, sendText, serveProcess, within } from './helpers/serve-process.js';
import { SseClient } from './helpers/sse.js';
import { eventually } from './helpers/wait.js';

const scenarios: Scenario[] = [
  {
    // Its tool waits for a file the test writes, so the turn ends only when the test lets it.
    name: 'gated-write',
    match: { userText: 'write the plan once released' },
    steps: [
      {
        toolUse: {
          name: 'Bash',
          input: {
            // Bounded (a minute), so that a test that fails before its release leaves no tool waiting.
            command:
              'for i in $(seq 1200); do [ -e release ] && break; sleep 0.05; done; ' +
              'cat release; echo drained-safely > plan.txt',
          },
        },
      },
      { text: 'The plan is written once released.' },
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

/**
 * Lets the gated tool go on: `release` appears whole, by a rename, since the tool reads it as soon as it
 * exists (a plain write let it read the file still empty).
 */
async function release(dir: string, text: string): Promise<void> {
  await writeFile(path.join(dir, 'release.tmp'), text);
  await rename(path.join(dir, 'release.tmp'), path.join(dir, 'release'));
}

const dirs: string[] = [];
const servers: TestBerth[] = [];
afterAll(async () => {
  await killServeProcesses();
  await Promise.allSettled(servers.map((s) => s.dispose()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('SIGTERM drain', () => {
  it('finishes the running turn, suspends every session, exits 0, and the next host hydrates them', async () => {
    const model = await startMockModel({ scenarios });
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-drain-'));
    dirs.push(dataDir);
    try {
      const first = await serveProcess(dataDir, model.url);
      const id = await createSessionAt(first.url, { allow: ['bash', 'read'] });
      const idle = await createSessionAt(first.url);
      const another = await sessionBodyAt(first.url);
      const sent = await sendText(first.url, id, 'write the plan once released');
      await eventually(
        async () => (await history(first.url, id)).some((e) => e.type === 'agent.tool_use'),
        'the gated tool to start',
      );
      // The turn cannot end before the test releases its tool, which it does only once the drain began.
      expect((await api(first.url, 'GET', `/v1/sessions/${id}`)).body.status).toBe('running');

      first.child.kill('SIGTERM');
      await eventually(
        async () => (await fetch(`${first.url}/readyz`)).status === 503,
        '/readyz to turn 503',
      );
      const refused = await api(first.url, 'POST', '/v1/sessions', another);
      expect(refused.status).toBe(503);
      expect(refused.body.error.details.error_code).toBe('host_draining');
      const beforeRelease = (await history(first.url, id)).filter((e) => e.seq > sent);
      expect(beforeRelease.map((e) => e.type)).not.toContain('agent.tool_result');
      expect(first.child.exitCode).toBeNull();
      await release(path.join(dataDir, 'workspaces', 'default', id), 'released after the signal\n');
      expect(await within(first.exit, 60_000, 'the drained exit')).toBe(0);
      expect(first.output).toMatch(/"suspended":2,"failed":0,"stopped_turns":0,"msg":"drained"/);
      expect(await markedProcessesUnder(dataDir)).toEqual([]);

      const second = await serveProcess(dataDir, model.url);
      for (const sid of [id, idle]) {
        expect((await api(second.url, 'GET', `/v1/sessions/${sid}`)).body.berth.status).toBe('suspended');
      }
      // Nothing lost: the turn that was running when the signal came went on past it (its tool read what
      // the test wrote after the signal) and finished, then the session was suspended.
      const turn = (await history(second.url, id)).filter((e) => e.seq > sent);
      const types = turn.map((e) => e.type);
      expect(JSON.stringify(turn.find((e) => e.type === 'agent.tool_result'))).toContain(
        'released after the signal',
      );
      const texts = turn.flatMap((e) => (e.type === 'agent.message' ? [textOf(e.content)] : []));
      expect(texts).toContain('The plan is written once released.');
      expect(types).not.toContain('session.error');
      expect(types.indexOf('agent.tool_result')).toBeLessThan(types.indexOf('session.status_idle'));
      expect(turn.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'host_draining' });

      const read = await sendText(second.url, id, 'read the plan');
      let after: ApiEvent[] = [];
      await eventually(async () => {
        after = (await history(second.url, id)).filter((e) => e.seq > read);
        return after.some((e) => e.type === 'session.status_idle');
      }, 'the hydrated turn');
      expect(JSON.stringify(after.find((e) => e.type === 'agent.tool_result'))).toContain('drained-safely');
      const request = model.requests.findLast((r) => r.isMain && r.userText === 'read the plan');
      expect(JSON.stringify(request?.body)).toContain('write the plan once released');

      second.child.kill('SIGTERM');
      expect(await within(second.exit, 60_000, 'the second exit')).toBe(0);
    } finally {
      await model.close();
    }
  }, 150_000);
  // Ctrl-C is SIGINT, an orchestrator's stop SIGTERM: either way the drain's events reach open streams.
  it.each(['SIGTERM', 'SIGINT'] as const)(
    'sends %s-drain events to open streams before it closes them',
    async (signal) => {
      const model = await startMockModel({ scenarios });
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-drain-'));
      dirs.push(dataDir);
      try {
        const server = await serveProcess(dataDir, model.url);
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
    const [sent] = await berth.send(busy, [
      { type: 'user.message', content: 'write the plan once released' },
    ]);
    await eventually(
      async () => (await berth.history(busy)).some((e) => e.type === 'agent.tool_use'),
      'the gated tool to start',
    );

    // Longer than this test may run: only the turn ending lets the drain go on.
    const drained = host.drain(10 * 60_000);
    const cwd = host.pathsFor({ tenant: 'default', id: busy }).cwd;
    try {
      expect(host.state).toBe('draining');
      // The drain waits while the tool does; the test lets the tool end only now.
      expect((await berth.history(busy)).map((e) => e.type)).not.toContain('agent.tool_result');
    } finally {
      // Whatever failed above, the tool (and with it the drain) must not be left waiting.
      await release(cwd, 'released during the drain\n');
    }
    expect(await drained).toEqual({ suspended: 2, failed: 0, stoppedTurns: 0 });
    expect(host.state).toBe('draining');
    const after = (await berth.history(busy)).filter((e) => e.seq > sent!.seq);
    expect(JSON.stringify(after)).toContain('released during the drain');
    expect(JSON.stringify(after)).toContain('The plan is written once released.');
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
