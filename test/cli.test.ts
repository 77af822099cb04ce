/**
 * The CLI as a user runs it: `berth serve` on its embedded defaults (the scripted model, SQLite), a
 * restart that resumes the conversation, a crash (SIGKILL) that the next host cleans up after,
 * `berth run`, `berth mock-model`, and bad flags.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from './helpers/api-events.js';
import { createSessionAt } from './helpers/berth.js';
import { openStores } from '../src/stores/open-stores.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { postgresBackend } from './helpers/backends.js';
import { hostProcesses, markedProcessesUnder } from './helpers/processes.js';
import { eventually } from './helpers/wait.js';
import { expectSameTranscript, localTranscript } from './helpers/transcripts.js';

const BIN = path.resolve('bin/berth.js');

interface Running {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
}

/** Every CLI this file started, to be ended if a test fails before it ends it. */
const started: Running[] = [];

/**
 * Starts the CLI with a clean environment (no ANTHROPIC_API_KEY, no BERTH_*). Its TMPDIR is this file's
 * directory, so what it makes there (`berth run`'s data dir, the SDK's resume dirs) is this file's to
 * check and the run's to clean up.
 */
function run(args: string[], cwd: string): Running {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: cwd, TMPDIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const running: Running = {
    child,
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => {
      child.on('exit', (code) => resolve(code));
      child.on('error', (err) => {
        running.stderr += `spawn failed: ${err.message}\n`;
        resolve(null);
      });
    }),
  };
  child.stdout.on('data', (c: Buffer) => (running.stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (running.stderr += c.toString()));
  started.push(running);
  return running;
}

const exited = (r: Running): boolean => r.child.exitCode !== null || r.child.signalCode !== null;

/**
 * A test that failed before it stopped its servers leaves them and their agents running (seen: a stale
 * `dist/` failed the first request, and four hosts ran on for 40 minutes). Whatever a test started ends
 * with it: each CLI still running is killed and awaited, then every agent process under this file's
 * directory (a host the test SIGKILLed leaves its unsandboxed agents, whether or not a CLI is left).
 */
afterEach(async () => {
  const left = started.splice(0).filter((r) => !exited(r));
  for (const r of left) r.child.kill('SIGKILL');
  await Promise.all(left.map((r) => r.exit));
  if (!dir) return;
  for (const p of await markedProcessesUnder(dir)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
});

/** Waits until the CLI's output matches `pattern`; fails at once if the CLI exits first. */
async function waitForOutput(r: Running, pattern: RegExp, boundMs = 30_000): Promise<RegExpMatchArray> {
  let match: RegExpMatchArray | null = null;
  await eventually(
    () => {
      match = (r.stderr + r.stdout).match(pattern);
      if (!match && exited(r)) {
        throw new Error(
          `the CLI exited (${r.child.exitCode ?? r.child.signalCode}) before printing ${pattern}:\n${r.stderr}\n${r.stdout}`,
        );
      }
      return match !== null;
    },
    () => `${pattern} in the CLI's output:\n${r.stderr}\n${r.stdout}`,
    { boundMs, everyMs: 50 },
  );
  return match!;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
async function api(base: string, method: string, route: string, body?: unknown): Promise<any> {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Sends a message and polls history until the turn's final status_idle. */
async function turn(base: string, id: string, content: string): Promise<ApiEvent[]> {
  const sent = await api(base, 'POST', `/v1/sessions/${id}/events`, {
    events: [{ type: 'user.message', content: [{ type: 'text', text: content }] }],
  });
  expect(sent.status).toBe(200);
  const after = sent.body.data[0].seq as number;
  let events: ApiEvent[] = [];
  await eventually(
    async () => {
      const all = (await api(base, 'GET', `/v1/sessions/${id}/events?limit=1000`)).body.data as ApiEvent[];
      events = all.filter((e) => e.seq > after);
      return events.some((e) => e.type === 'session.status_idle' && e.stop_reason.type !== 'requires_action');
    },
    () =>
      `the turn ${JSON.stringify(content)} of ${id} to end; its events so far: ${events.map((e) => e.type).join(', ')}`,
    { everyMs: 50 },
  );
  return events;
}

/**
 * The one session's local JSONL transcript and what the store holds for it (the embedded store unless a
 * URL is given). A networked store is read until the host's spool has shipped what it holds.
 */
async function transcripts(
  dataDir: string,
  storeUrl?: string,
): Promise<{ local: unknown[]; stored: unknown[] }> {
  const { sdkSessionId, entries } = await localTranscript(dataDir);
  const stores = await openStores(storeUrl ?? `sqlite:${path.join(dataDir, 'berth.db')}`);
  try {
    let stored: unknown[] = [];
    const load = async () =>
      (stored =
        (await stores.transcriptStore.load({ projectKey: 'default', sessionId: sdkSessionId })) ?? []);
    // Bounded; a store still short at the bound is the caller's comparison to fail, entry by entry.
    await eventually(
      async () => (await load()).length >= entries.length,
      'the store to hold the local transcript',
      { boundMs: 10_000 },
    ).catch(() => undefined);
    return { local: entries, stored };
  } finally {
    await stores.close();
  }
}

let dir: string;
let model: MockModel;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-cli-'));
  model = await startMockModel();
});

afterAll(async () => {
  await model?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('berth serve', () => {
  it('runs on its embedded defaults, announces the scripted model, and resumes after a restart', async () => {
    const cwd = path.join(dir, 'restart');
    await mkdir(cwd);
    const first = run(['serve', '--port', '0'], cwd);
    const [, base] = await waitForOutput(first, /listening on (http:\/\/[\d.:]+)/);
    // Each start-up line is a log line of its own, written after "listening on": waited for, not assumed.
    await waitForOutput(first, /built-in scripted model.*no ANTHROPIC_API_KEY/);
    await waitForOutput(first, new RegExp(`sqlite:${path.join(cwd, '.berth', 'berth.db')}`));

    const id = await createSessionAt(base!, { title: 'survives restarts' });
    await turn(base!, id, 'the secret word is pelican');
    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);

    // The second host talks to a scripted model this test can read, to see what the resumed CLI sends.
    const second = run(['serve', '--port', '0', '--model-endpoint', model.url], cwd);
    const [, base2] = await waitForOutput(second, /listening on (http:\/\/[\d.:]+)/);
    try {
      const got = await api(base2!, 'GET', `/v1/sessions/${id}`);
      // SIGTERM drained the first host: the session was suspended, and this turn hydrates it.
      expect(got.body).toMatchObject({
        id,
        status: 'idle',
        title: 'survives restarts',
        berth: { status: 'suspended', turns: 1 },
      });
      const events = await turn(base2!, id, 'what is the secret word?');
      const text = JSON.stringify(events.filter((e) => e.type === 'agent.message'));
      expect(text).toContain('what is the secret word?');
      const request = model.requests.findLast((r) => r.isMain && r.userText === 'what is the secret word?');
      expect(JSON.stringify(request?.messages)).toContain('the secret word is pelican');
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exit).toBe(0);
    }
  });

  // Unconfined agents outlive a SIGKILLed host, and the next host's sweep must find them; sandboxed ones
  // die with it (bwrap's --die-with-parent ends their PID namespace), escaped job and all.
  it.each([
    { store: 'sqlite (default)', backend: undefined, sandbox: 'none' },
    { store: 'postgres', backend: postgresBackend(), sandbox: 'bwrap' },
  ])(
    'after a SIGKILL, no agent process outlives the next host and the session resumes: $store, --sandbox $sandbox',
    async ({ backend, sandbox }) => {
      const testStore = await backend?.create();
      const storeArgs = [...(testStore ? ['--store', testStore.url] : []), '--sandbox', sandbox];
      const cwd = path.join(dir, `crash-${backend?.name ?? 'sqlite'}`);
      await mkdir(cwd);
      const script = path.join(cwd, 'scenarios.json');
      // The daemon's name is this test's own: the wait below finds its daemon, not another run's.
      const daemon = `berthd-${randomBytes(4).toString('hex')}`;
      await writeFile(
        script,
        JSON.stringify([
          { match: { userText: 'stall forever' }, steps: [{ text: 'never', fault: { stallMs: 1e12 } }] },
          {
            // A job that escapes into its own session: it outlives the CLI, so only a sweep can find it.
            match: { userText: 'start the daemon' },
            steps: [
              {
                toolUse: {
                  name: 'Bash',
                  input: {
                    command:
                      `cp "$(command -v sleep)" ./${daemon} && { setsid ./${daemon} 4800 >/dev/null 2>&1 & } ; ` +
                      `i=0; until grep -qsa "^\\\\./${daemon}.4800" /proc/[0-9]*/cmdline; do ` +
                      `i=$((i+1)); [ $i -lt 300 ] || { echo "${daemon} never started"; exit 1; }; sleep 0.1; done; ` +
                      `echo "${daemon} is running"`,
                  },
                },
              },
              { text: 'started' },
            ],
          },
        ]),
      );
      const first = run(['serve', '--port', '0', '--mock-script', script, ...storeArgs], cwd);
      const [, base] = await waitForOutput(first, /listening on (http:\/\/[\d.:]+)/);
      const id = await createSessionAt(base!, { allow: ['bash'] });
      await turn(base!, id, 'remember the number 8675309');
      const daemonTurn = await turn(base!, id, 'start the daemon');
      expect(JSON.stringify(daemonTurn.find((e) => e.type === 'agent.tool_result'))).toContain(
        `${daemon} is running`,
      );
      const dataDir = path.join(cwd, '.berth');
      expect((await hostProcesses(dataDir)).length).toBeGreaterThan(0);
      await api(base!, 'POST', `/v1/sessions/${id}/events`, {
        events: [{ type: 'user.message', content: [{ type: 'text', text: 'stall forever' }] }],
      });
      // The host dies mid-turn: once the CLI has written the message to its transcript.
      await eventually(
        async () =>
          JSON.stringify((await localTranscript(dataDir).catch(() => undefined))?.entries ?? []).includes(
            'stall forever',
          ),
        "the CLI to take the 'stall forever' turn",
      );
      first.child.kill('SIGKILL');
      await first.exit;
      if (sandbox === 'bwrap') {
        await eventually(
          async () => (await hostProcesses(dataDir)).length === 0,
          'sandboxed agents to die with their host',
        );
      }

      // No spare on the second host: every marked process under the data dir must be the dead host's.
      const second = run(
        ['serve', '--port', '0', '--warm-pool', '0', '--model-endpoint', model.url, ...storeArgs],
        cwd,
      );
      const [, base2] = await waitForOutput(second, /listening on (http:\/\/[\d.:]+)/);
      try {
        // The new host swept what the killed one left: the CLI, and the job that escaped into its own session.
        if (sandbox === 'none') {
          expect(second.stderr).toMatch(
            /"killed":[1-9]\d*,"msg":"killed processes that an earlier host left running"/,
          );
        }
        expect(await hostProcesses(dataDir)).toEqual([]);
        const history = (await api(base2!, 'GET', `/v1/sessions/${id}/events`)).body.data as ApiEvent[];
        const tail = history.slice(-2);
        expect(tail[0]).toMatchObject({ type: 'session.error', error: { code: 'host_restarted' } });
        expect(tail[1]).toMatchObject({ type: 'session.status_idle' });
        expect((await api(base2!, 'GET', `/v1/sessions/${id}`)).body.status).toBe('idle');
        // Nothing the killed host's subprocess wrote is missing from the store: entry for entry, the store
        // holds the local transcript (the turn in flight had not been mirrored when the host died).
        const { local, stored } = await transcripts(path.join(cwd, '.berth'), testStore?.url);
        expect(local.some((e) => JSON.stringify(e).includes('stall forever'))).toBe(true);
        expectSameTranscript(stored, local);
        const events = await turn(base2!, id, 'which number?');
        expect(JSON.stringify(events)).toContain('which number?');
        const request = model.requests.findLast((r) => r.isMain && r.userText === 'which number?');
        const texts = JSON.stringify(request?.messages).match(/"text":"[^"]{0,60}/g) ?? [];
        expect(JSON.stringify(request?.messages), texts.join(' | ')).toContain('remember the number 8675309');
      } finally {
        second.child.kill('SIGTERM');
        expect(await second.exit).toBe(0);
        await testStore?.cleanup();
      }
    },
  );

  it('refuses a second server on the same data dir, naming the first, and leaves its agents alone', async () => {
    const cwd = path.join(dir, 'locked');
    await mkdir(cwd);
    const dataDir = path.join(cwd, '.berth');
    // Two spares: one for the tenant, one for tasks (under tenants/_tasks, which a second host used to delete).
    // Unsandboxed: the test needs task spares, which sandboxed hosts do not keep.
    const first = run(
      ['serve', '--port', '0', '--warm-pool', '2', '--sandbox', 'none', '--model-endpoint', model.url],
      cwd,
    );
    try {
      const [, base] = await waitForOutput(first, /listening on (http:\/\/[\d.:]+)/);
      const id = await createSessionAt(base!);
      await turn(base!, id, 'hello before the second server');
      await eventually(
        async () => (await api(base!, 'GET', '/v1/hosts/self')).body.warm_pool.parked === 2,
        'two parked spares',
      );
      const agents = await hostProcesses(dataDir);
      const taskSpares = await readdir(path.join(dataDir, 'tenants', '_tasks'));
      expect(taskSpares.length).toBe(1);

      // Another port, so only the data dir is shared.
      const second = run(['serve', '--port', '0', '--model-endpoint', model.url], cwd);
      const outcome = await Promise.race([
        second.exit,
        waitForOutput(second, /listening on/).then(() => 'listening'),
      ]);
      if (outcome === 'listening') second.child.kill('SIGKILL');
      expect(outcome, second.stderr).toBe(2);
      expect(second.stderr).toContain(`is in use by another berth process (pid ${first.child.pid},`);

      // Nothing of the first server's was touched: its agents, its spares' directories, its session.
      const alive = (pid: number): boolean => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      expect(agents.filter((pid) => !alive(pid))).toEqual([]);
      expect(await readdir(path.join(dataDir, 'tenants', '_tasks'))).toEqual(taskSpares);
      const events = await turn(base!, id, 'still there after the second server?');
      expect(JSON.stringify(events)).toContain('still there after the second server?');
      expect(JSON.stringify(events)).not.toContain('session.error');
    } finally {
      first.child.kill('SIGTERM');
      expect(await first.exit).toBe(0);
    }
    // Released on exit: the data dir serves again.
    const third = run(['serve', '--port', '0', '--warm-pool', '0', '--model-endpoint', model.url], cwd);
    await waitForOutput(third, /listening on/);
    third.child.kill('SIGTERM');
    expect(await third.exit).toBe(0);
  });

  it('runs a resumed session in its tenant config dir, so a host killed mid-turn leaves nothing behind', async () => {
    const cwd = path.join(dir, 'resumed-crash');
    await mkdir(cwd);
    const dataDir = path.join(cwd, '.berth');
    const configDir = path.join(dataDir, 'tenants', 'default', 'claude-config');
    const script = path.join(cwd, 'scenarios.json');
    await writeFile(
      script,
      JSON.stringify([
        { match: { userText: 'stall forever' }, steps: [{ text: 'never', fault: { stallMs: 1e12 } }] },
      ]),
    );
    // The servers' TMPDIR is `dir` (see run()), where the SDK makes its resume dirs.
    const resumeDirs = async (): Promise<string[]> =>
      (await readdir(dir)).filter((name) => name.startsWith('claude-resume-'));
    const before = new Set(await resumeDirs());
    const serve = (): Running =>
      // Unsandboxed: a sandboxed agent dies with its host, so there would be nothing to sweep.
      run(['serve', '--port', '0', '--warm-pool', '0', '--sandbox', 'none', '--mock-script', script], cwd);

    const first = serve();
    const [, base] = await waitForOutput(first, /listening on (http:\/\/[\d.:]+)/);
    const id = await createSessionAt(base!);
    await turn(base!, id, 'remember the word quince');
    first.child.kill('SIGTERM');
    expect(await first.exit).toBe(0);

    // The next host resumes the session from the store; its subprocess must run in the tenant's config
    // dir (where the orphan sweep looks), not in a directory the SDK made elsewhere.
    const second = serve();
    const [, base2] = await waitForOutput(second, /listening on (http:\/\/[\d.:]+)/);
    await api(base2!, 'POST', `/v1/sessions/${id}/events`, {
      events: [{ type: 'user.message', content: [{ type: 'text', text: 'stall forever' }] }],
    });
    try {
      let resumed: number[] = [];
      await eventually(
        async () => (resumed = await hostProcesses(dataDir)).length > 0,
        'a subprocess with a config dir under the data dir',
      );
      const environ = await readFile(`/proc/${Math.min(...resumed)}/environ`, 'utf8');
      expect(environ.split('\0')).toContain(`CLAUDE_CONFIG_DIR=${configDir}`);
    } finally {
      second.child.kill('SIGKILL');
      await second.exit;
    }

    const third = serve();
    const [, base3] = await waitForOutput(third, /listening on (http:\/\/[\d.:]+)/);
    try {
      expect(third.stderr).toMatch(
        /"killed":[1-9]\d*,"msg":"killed processes that an earlier host left running"/,
      );
      expect(await hostProcesses(dataDir)).toEqual([]);
      const events = await turn(base3!, id, 'which word?');
      expect(JSON.stringify(events)).not.toContain('session.error');
      const left = (await resumeDirs()).filter((name) => !before.has(name));
      expect(left).toEqual([]);
    } finally {
      third.child.kill('SIGTERM');
      expect(await third.exit).toBe(0);
    }
  });

  it('rejects bad flags with a clear message and exit code 2', async () => {
    for (const [args, message] of [
      [['serve', '--port', 'abc'], /--port/],
      [['serve', '--store', 'nosuch://x'], /unsupported store URL/],
      [['serve', '--host', '0.0.0.0'], /loopback/],
      [['serve', '--frobnicate'], /frobnicate/],
      [['launch'], /unknown command/],
      [['run'], /needs a prompt/],
    ] as const) {
      const r = run([...args], dir);
      expect(await r.exit, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('berth run and berth mock-model', () => {
  it('runs one task and prints its result, leaving nothing behind', async () => {
    // `berth run` makes its throwaway data dir in its TMPDIR: `dir` (see run()).
    const before = new Set(await readdir(dir));
    const r = run(['run', 'say hello to the harbour'], dir);
    expect(await r.exit, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('Scripted reply to: say hello to the harbour');
    const after = await readdir(dir);
    expect(after.filter((name) => name.startsWith('berth-run-') && !before.has(name))).toEqual([]);
  });

  it('runs a task on a server with --server, uploading --file and downloading its artifacts to --out', async () => {
    const cwd = path.join(dir, 'run-server');
    await mkdir(cwd);
    const script = path.join(cwd, 'scenarios.json');
    await writeFile(
      script,
      JSON.stringify([
        {
          match: { userText: 'shout the note' },
          steps: [
            {
              toolUse: {
                name: 'Bash',
                input: { command: 'mkdir -p loud && tr a-z A-Z < note.txt > loud/note.txt' },
              },
            },
            { text: 'Shouted.' },
          ],
        },
        { match: { userText: 'stall forever' }, steps: [{ text: 'never', fault: { stallMs: 1e12 } }] },
      ]),
    );
    await writeFile(path.join(cwd, 'note.txt'), 'quiet please\n');
    const server = run(['serve', '--port', '0', '--mock-script', script, '--warm-pool', '0'], cwd);
    const [, base] = await waitForOutput(server, /listening on (http:\/\/[\d.:]+)/);
    try {
      const r = run(
        [
          'run',
          'shout the note',
          '--server',
          base!,
          '--file',
          'note.txt',
          '--out',
          'results',
          '--allowed-tools',
          'Bash',
        ],
        cwd,
      );
      expect(await r.exit, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('Shouted.');
      expect(await readFile(path.join(cwd, 'results', 'loud', 'note.txt'), 'utf8')).toBe('QUIET PLEASE\n');
      const late = run(['run', 'stall forever', '--server', base!, '--timeout', '1s'], cwd);
      expect(await late.exit).toBe(1);
      expect(late.stderr).toMatch(/timed out/);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exit).toBe(0);
    }
  });

  it('serves the scripted model alone', async () => {
    const r = run(['mock-model', '--port', '0'], dir);
    const [, url] = await waitForOutput(r, /(http:\/\/127\.0\.0\.1:\d+)/);
    const res = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'ping' }] }),
    });
    const reply = (await res.json()) as { content: Array<{ text: string }> };
    expect(reply.content[0]!.text).toBe('Scripted reply to: ping');
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
  });
});
