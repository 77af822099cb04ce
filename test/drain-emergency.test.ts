/**
 * The drain's emergency paths, on `berth serve` as a child process (docs/operations.md, "Restarts and
 * drain"; README's "Drain" row):
 * - a second SIGTERM or SIGINT during a drain SIGKILLs every process the host started (a process that left
 *   its tree included) and the server exits 1 at once, however long the drain timeout;
 * - a turn still running when `--drain-timeout` runs out is stopped: it ends with `session.error`
 *   `subprocess_stopped`, its session is suspended all the same (exit 0) and the next server resumes it;
 * - a suspension that fails (the blob store went down: the workspace snapshot cannot be stored) makes the
 *   drain end with exit 1, the session told `suspend_failed`, and no process left.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { textOf } from './helpers/api-events.js';
import { startMockModel, type MockModel, type Scenario } from '../src/testing/index.js';
import { createSessionAt } from './helpers/berth.js';
import { markedProcessesUnder } from './helpers/processes.js';
import { startS3Server } from './helpers/s3-server.js';
import {
  api,
  history,
  killServeProcesses,
  sendText,
  serveProcess,
  within,
  type ServeProcess,
} from './helpers/serve-process.js';
import { SseClient } from './helpers/sse.js';
import { eventually } from './helpers/wait.js';

const scenarios: Scenario[] = [
  {
    // A tool that never ends on its own, and a daemon it started: in a session of its own, its parent gone.
    name: 'sleep',
    match: { userText: 'sleep in the shell' },
    steps: [
      {
        toolUse: {
          name: 'Bash',
          input: { command: '(setsid sleep 6001 >/dev/null 2>&1 </dev/null &); sleep 6002' },
        },
      },
      { text: 'Slept.' },
    ],
  },
  {
    name: 'stall',
    match: { userText: 'stall forever' },
    steps: [{ text: 'never finished', fault: { stallMs: Infinity } }],
  },
  { name: 'hello', match: { userText: 'say hello' }, steps: [{ text: 'Hello again.' }] },
];

/** Bounds a server's exit once it has no reason left to wait (a hang bound, not a timing claim). */
const EXIT_BOUND_MS = 20_000;

const dirs: string[] = [];
afterAll(async () => {
  await killServeProcesses();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-drain-'));
  dirs.push(dir);
  return dir;
}

async function withModel(run: (model: MockModel) => Promise<void>): Promise<void> {
  const model = await startMockModel({ scenarios });
  try {
    await run(model);
  } finally {
    await model.close();
  }
}

/** Waits until the server has taken the first signal (the drain began), so the next one is the second. */
async function draining(server: ServeProcess): Promise<void> {
  await eventually(() => server.output.includes('"msg":"draining'), 'the drain to begin', {
    everyMs: 20,
  });
}

describe('a second signal during a drain', () => {
  // Sandboxed, the sandbox's PID namespace (--die-with-parent) also ends with the server; unconfined, only
  // the host's kill by marker ends the daemon, which left both its tree and its process group.
  it.each([
    ['SIGTERM', 'SIGINT', 'bwrap'],
    ['SIGINT', 'SIGTERM', 'none'],
  ] as const)(
    'after %s, %s kills every subprocess tree (--sandbox %s) and exits 1 at once',
    async (first, second, sandbox) => {
      await withModel(async (model) => {
        const dir = await dataDir();
        // A drain that would wait for these turns far longer than the test's bound.
        const server = await serveProcess(dir, model.url, {
          args: ['--sandbox', sandbox],
          env: { BERTH_DRAIN_TIMEOUT: '10m' },
        });
        const shell = await createSessionAt(server.url, { allow: ['bash'] });
        const stalled = await createSessionAt(server.url);
        await sendText(server.url, shell, 'sleep in the shell');
        await sendText(server.url, stalled, 'stall forever');
        await eventually(async () => {
          const commands = (await markedProcessesUnder(dir)).map((p) => p.cmdline);
          return commands.includes('sleep 6001') && commands.includes('sleep 6002');
        }, 'the tool and its daemon to run');
        await model.waitForRequest((r) => r.isMain && r.userText === 'stall forever', {
          timeoutMs: 30_000,
        });
        for (const id of [shell, stalled]) {
          expect((await api(server.url, 'GET', `/v1/sessions/${id}`)).body.status).toBe('running');
        }

        server.child.kill(first);
        await draining(server);
        expect(server.child.exitCode).toBeNull();
        server.child.kill(second);
        // The documented code of a forced exit (docs/operations.md: "SIGKILLs every process the host
        // started and exits 1").
        expect(await within(server.exit, EXIT_BOUND_MS, 'the exit after the second signal')).toBe(1);
        expect(server.output).toContain('second signal: killing every subprocess and exiting now');
        expect(server.output).not.toContain('"msg":"drained');
        // SIGKILLed processes are gone once the kernel has reaped them.
        await eventually(
          async () => (await markedProcessesUnder(dir)).length === 0,
          'every subprocess of the host to be gone',
          { boundMs: 5000, everyMs: 50 },
        );
      });
    },
  );
});

describe('the drain timeout running out', () => {
  it('stops the running turn (subprocess_stopped), suspends its session, and the next server resumes it', async () => {
    await withModel(async (model) => {
      const dir = await dataDir();
      const first = await serveProcess(dir, model.url, { env: { BERTH_DRAIN_TIMEOUT: '1s' } });
      const id = await createSessionAt(first.url);
      const sent = await sendText(first.url, id, 'stall forever');
      await model.waitForRequest((r) => r.isMain && r.userText === 'stall forever', { timeoutMs: 30_000 });
      expect(model.openResponses).toBeGreaterThan(0);

      first.child.kill('SIGTERM');
      expect(await within(first.exit, EXIT_BOUND_MS, 'the drained exit')).toBe(0);
      expect(first.output).toMatch(/"suspended":1,"failed":0,"stopped_turns":1,"msg":"drained"/);
      expect(await markedProcessesUnder(dir)).toEqual([]);

      const second = await serveProcess(dir, model.url);
      expect((await api(second.url, 'GET', `/v1/sessions/${id}`)).body.berth.status).toBe('suspended');
      const turn = (await history(second.url, id)).filter((e) => e.seq > sent);
      const types = turn.map((e) => e.type);
      expect(turn.find((e) => e.type === 'session.error')).toMatchObject({
        error: { code: 'subprocess_stopped' },
      });
      expect(turn.at(-1)).toMatchObject({ type: 'session.status_suspended', reason: 'host_draining' });
      expect(types.indexOf('session.error')).toBeLessThan(types.indexOf('session.status_suspended'));
      expect(types).not.toContain('agent.message');

      const again = await sendText(second.url, id, 'say hello');
      let after: typeof turn = [];
      await eventually(async () => {
        after = (await history(second.url, id)).filter((e) => e.seq > again);
        return after.some((e) => e.type === 'session.status_idle');
      }, 'the resumed turn');
      expect(after.flatMap((e) => (e.type === 'agent.message' ? [textOf(e.content)] : []))).toEqual([
        'Hello again.',
      ]);
      // Resumed, not started afresh: the model is sent the stopped turn's words too.
      const request = model.requests.findLast((r) => r.isMain && r.userText === 'say hello');
      expect(JSON.stringify(request?.body)).toContain('stall forever');

      second.child.kill('SIGTERM');
      expect(await within(second.exit, EXIT_BOUND_MS, 'the second exit')).toBe(0);
      expect(await markedProcessesUnder(dir)).toEqual([]);
    });
  });
});

describe('a suspension that fails during the drain', () => {
  it('tells the session suspend_failed, leaves no process and exits 1', async () => {
    const s3 = await startS3Server();
    try {
      await withModel(async (model) => {
        const dir = await dataDir();
        await s3.createBucket('drain');
        const blobStore = `s3://drain/workspaces?endpoint=${encodeURIComponent(s3.endpoint)}&region=us-east-1&forcePathStyle=true`;
        const server = await serveProcess(dir, model.url, {
          args: ['--blob-store', blobStore],
          env: {
            AWS_ACCESS_KEY_ID: 'S3RVER',
            AWS_SECRET_ACCESS_KEY: 'S3RVER',
            AWS_EC2_METADATA_DISABLED: 'true',
            AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          },
        });
        const id = await createSessionAt(server.url);
        // A turn makes the workspace newer than any snapshot: the drain must upload one.
        const sent = await sendText(server.url, id, 'say hello');
        await eventually(
          async () =>
            (await history(server.url, id)).some((e) => e.seq > sent && e.type === 'session.status_idle'),
          'the turn to end',
        );
        const stream = new SseClient(`${server.url}/v1/sessions/${id}/events/stream`);
        expect(await stream.status).toBe(200);
        // The blob store goes down: connections to it are refused from now on.
        await s3.close();

        server.child.kill('SIGTERM');
        const failed = await stream.waitFor((e) => e.type === 'session.error');
        expect(failed).toMatchObject({ error: { code: 'suspend_failed' } });
        expect(await within(server.exit, EXIT_BOUND_MS, 'the drained exit')).toBe(1);
        expect(server.output).toMatch(
          /"suspended":0,"failed":1,"stopped_turns":0,"msg":"drained, but some sessions could not be suspended"/,
        );
        // Everything the server sent has been read once the stream has ended.
        await stream.waitForEnd(10_000);
        expect(stream.events.map((e) => e.type)).not.toContain('session.status_suspended');
        expect(await markedProcessesUnder(dir)).toEqual([]);
      });
    } finally {
      await s3.close();
    }
  });
});
