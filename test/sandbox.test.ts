/**
 * `--sandbox bwrap`: each `claude` CLI runs in a bubblewrap sandbox of its own. Tried as a hostile agent
 * would, through the API with the real CLI and its Bash tool, with two tenants: what it can see of the
 * host, of the server and of the other tenant.
 */
import { randomInt } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeConfig } from '../src/config.js';
import { findProcesses } from '../src/sandbox/process-tree.js';
import { MODEL_PORT } from '../src/sandbox/bwrap.js';
import type { ApiEvent } from './helpers/api-events.js';
import { credentialFingerprint, startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth, UNSANDBOXED } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';

// Jobs that scrub their environment are found by their command line, which is made this run's own: another
// run on the machine (a CI run beside a developer's) must not be counted.
const HIDDEN_SLEEP = 100_000 + randomInt(800_000);
const BOMB_SLEEP = HIDDEN_SLEEP + 1;

const ALPHA = { authorization: 'Bearer alpha-key-0001' };
const REAL_KEY = 'sk-ant-real-key-of-the-sandbox-test';
const AGENT_PIDS = 96;
const BETA = { authorization: 'Bearer beta-key-0002' };

let dataDir: string;
let model: MockModel;
let berth: TestBerth;
/** Where beta's file is: a session id chosen up front, so that the scripted commands can name it. */
const otherFile = (): string => path.join(dataDir, 'workspaces', 'beta', 'victim', 'secret.txt');

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-'));
  // One Bash command per prompt `probe N`, its output in `out.txt` of the session's cwd.
  const probes = [
    `ls -la ${dataDir}; ls ${dataDir}/berth.db`,
    `cat ${otherFile()}`,
    'ps -eo pid,comm',
    'echo written-inside > mine.txt',
    // A job that leaves the process group and scrubs its environment (the tree marker with it).
    `(setsid env -i /bin/sleep ${HIDDEN_SLEEP} > /dev/null 2>&1 &); echo started`,
    // 5: who it is, and who owns what it writes.
    'echo "uid=$(id -u) gid=$(id -g)"; touch owned.txt; stat -c "owner=%u" owned.txt',
    // 6: addresses by TCP (targets.txt: `HOST PORT` lines the test writes into the cwd).
    'while read host port; do if timeout 3 bash -c "echo > /dev/tcp/$host/$port" 2>/dev/null; then echo "$host:$port reachable"; else echo "$host:$port unreachable"; fi; done < targets.txt',
    // 7: every environment it can read, for the real key.
    'echo "env=$(env | grep -c sk-ant-real)"; echo "proc=$(cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" | grep -c sk-ant-real)"',
    // 8: a bounded fork bomb (dash: no retry on EAGAIN), each process named so the host can count them.
    `sh -c 'i=0; while [ $i -lt 400 ]; do /bin/sleep ${BOMB_SLEEP} & i=$((i+1)); done' ; echo "bomb done"`,
    // 9: a memory hog that touches its pages itself (a string doubled until the kernel kills it). Not
    // `... | tail`: that one may instead get ENOMEM from a pipe or a read, and exit without being killed.
    // `ulimit -v` bounds it (4 GB, far above the 768 MiB limit) should the cgroup ever fail to.
    '(ulimit -v 4000000; awk \'BEGIN { s = "x"; while (1) s = s s }\'); echo "hog survived"',
    // 10: the other tenant's workspace, relative to its own (whatever the data dir).
    'ls ../..; cat ../../beta/victim/secret.txt',
    // 11: its tenant's workspaces directory (a warm spare's cwd): plant a file, or swap its own directory
    // for a symlink to a place the next spawn would bind and chown as root.
    'touch ../planted; mv "$PWD" ../moved && ln -s /etc "$PWD"; echo "tried"',
    // 12: a bounded hog: gawk peaks at ~330 MB (measured) for a 64 MiB string, which with the CLI's ~200 MB
    // fits under the suite's 768 MiB and not under an environment's 384 MiB.
    '(ulimit -v 4000000; awk \'BEGIN { s = "x"; while (length(s) < 2^26) s = s s; print "held " length(s) }\'); echo "hog survived"',
  ];
  model = await startMockModel({
    scenarios: [
      ...probes.map((probe, i) => ({
        match: { userText: `probe #${i}#` },
        steps: [
          { toolUse: { name: 'Bash', input: { command: `{ ${probe}; } > out.txt 2>&1; echo probed` } } },
          { text: 'probed' },
        ],
      })),
      // The CLI's own Read tool (in the CLI process, not a shell): the other tenant's file and the data
      // dir's uid table (a text file: the tool refuses a .db by its name before it looks for it).
      ...[otherFile(), path.join(dataDir, 'agent-uids.json')].map((file, i) => ({
        match: { userText: `read ${i}` },
        steps: [{ toolUse: { name: 'Read', input: { file_path: file } } }, { text: 'read' }],
      })),
    ],
  });
  berth = await TestBerth.start({
    model,
    dataDir,
    args: [
      ...['--sandbox', 'bwrap', '--api-keys', 'alpha:alpha-key-0001,beta:beta-key-0002'],
      // Small enough for the fork bomb and the memory hog to hit quickly.
      ...['--agent-pids', String(AGENT_PIDS), '--session-ram-ceiling', '768MiB'],
    ],
    env: { ANTHROPIC_API_KEY: REAL_KEY },
  });
});
afterAll(async () => {
  await berth?.dispose();
  await model?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/**
 * Runs probe `i` in a session (of the suite's server, or `on`), allowing its tool use when the session
 * asks (a session whose agent does not allow the tool); resolves to the events of its turn.
 */
async function runProbe(id: string, i: number, auth = ALPHA, on = berth): Promise<ApiEvent[]> {
  const [sent] = await on.send(id, [{ type: 'user.message', content: `probe #${i}#` }], auth);
  let turn: ApiEvent[] = [];
  const confirmed = new Set<string>();
  await eventually(async () => {
    turn = (await on.history(id, auth)).filter((e) => e.seq > sent!.seq);
    for (const e of turn) {
      if (e.type !== 'agent.tool_use' || confirmed.has(e.id)) continue;
      const paused = turn.some(
        (p) => p.type === 'session.status_idle' && p.stop_reason.type === 'requires_action' && p.seq > e.seq,
      );
      if (!paused) continue;
      confirmed.add(e.id);
      await on.send(id, [{ type: 'user.tool_confirmation', tool_use_id: e.id, result: 'allow' }], auth);
    }
    return turn.some((e) => e.type === 'session.status_idle' && e.stop_reason.type !== 'requires_action');
  }, `the turn of probe ${i}`);
  return turn;
}

/** Runs probe `i` in a session; resolves to what it printed. */
async function probe(id: string, i: number, auth = ALPHA, on = berth): Promise<string> {
  await runProbe(id, i, auth, on);
  return readFile(path.join(cwdOf(id, auth, on), 'out.txt'), 'utf8');
}

function cwdOf(id: string, auth: typeof ALPHA, on = berth): string {
  return on.server.host.pathsFor({ tenant: auth === ALPHA ? 'alpha' : 'beta', id }).cwd;
}

const withBash = { allow: ['bash'] };

describe('--sandbox bwrap', () => {
  it("keeps an agent out of the data dir, the other tenant's files and the server's processes", async () => {
    await berth.createSession({ id: 'victim' }, BETA);
    await writeFile(otherFile(), 'beta-only\n');
    const id = await berth.createSession(withBash, ALPHA);

    const listing = await probe(id, 0);
    expect(listing).toMatch(/No such file or directory/);
    expect(listing).not.toContain('berth.db\n');

    const stolen = await probe(id, 1);
    expect(stolen).not.toContain('beta-only');
    expect(stolen).toMatch(/No such file or directory/);

    const processes = await probe(id, 2);
    // Its own PID namespace: the sandbox's init (bwrap), the CLI and what it runs; never the server.
    expect(processes).not.toMatch(new RegExp(`^\\s*${process.pid}\\s`, 'm'));
    expect(processes).not.toMatch(/\bnode\b/);

    await probe(id, 3);
    const cwd = berth.server.host.pathsFor({ tenant: 'alpha', id }).cwd;
    expect(await readFile(path.join(cwd, 'mine.txt'), 'utf8')).toBe('written-inside\n');
    expect(existsSync(otherFile())).toBe(true);
  });
});

describe('--sandbox bwrap, a warm start', () => {
  it("claims a sandboxed spare of the tenant's, and is as confined as a cold start", async () => {
    const warm = await TestBerth.start({
      model,
      args: ['--api-keys', 'alpha:alpha-key-0001,beta:beta-key-0002', '--warm-pool', '1'],
    });
    try {
      await eventually(() => warm.server.host.warmPoolStats.parked === 1, 'a parked spare');
      // Beta's file in this server's data dir, where the probe looks for it (`otherFile` names the suite's).
      const victim = path.join(warm.dataDir, 'workspaces', 'beta', 'victim', 'secret.txt');
      await mkdir(path.dirname(victim), { recursive: true });
      await writeFile(victim, 'beta-only\n');
      const id = await warm.createSession({}, ALPHA);
      const out = await probe(id, 5, ALPHA, warm);
      expect(warm.server.host.warmPoolStats.claimed).toBe(1);
      expect(Number(/uid=(\d+)/.exec(out)?.[1]), out).toBeGreaterThan(0);
      expect(out).toMatch(/owner=[1-9]\d*/);
      // What the spare binds is its tenant's workspaces: the other tenant's do not exist there.
      const stolen = await probe(id, 10, ALPHA, warm);
      expect(stolen).not.toContain('beta-only');
      expect(stolen).toMatch(/No such file or directory/);
      // The tenant's workspaces directory stays the server's: nothing planted, nothing swapped.
      const tenantDir = path.dirname(cwdOf(id, ALPHA, warm));
      expect(await probe(id, 11, ALPHA, warm)).toMatch(/Permission denied/);
      expect((await stat(tenantDir)).uid).toBe(process.getuid?.());
      expect(existsSync(path.join(tenantDir, 'planted'))).toBe(false);
      expect((await lstat(cwdOf(id, ALPHA, warm))).isDirectory()).toBe(true);
    } finally {
      await warm.dispose();
    }
  });
});

describe('--sandbox bwrap, the Read tool', () => {
  it("cannot read the other tenant's file or the data dir's either", async () => {
    await mkdir(path.dirname(otherFile()), { recursive: true });
    await writeFile(otherFile(), 'beta-only\n');
    const id = await berth.createSession({ allow: ['read'] }, ALPHA);
    for (const i of [0, 1]) {
      const [sent] = await berth.send(id, [{ type: 'user.message', content: `read ${i}` }], ALPHA);
      let turn: ApiEvent[] = [];
      await eventually(async () => {
        turn = (await berth.history(id, ALPHA)).filter((e) => e.seq > sent!.seq);
        return turn.some((e) => e.type === 'session.status_idle');
      }, `read ${i}`);
      const result = turn.find((e) => e.type === 'agent.tool_result');
      expect(result, JSON.stringify(turn)).toMatchObject({ is_error: true });
      expect(JSON.stringify(result), JSON.stringify(result)).toMatch(/does not exist|no such file/i);
      expect(JSON.stringify(turn)).not.toContain('beta-only');
    }
  });
});

describe('--sandbox bwrap, a job that hides', () => {
  it('dies with its session, setsid and a scrubbed environment notwithstanding', async () => {
    const id = await berth.createSession(withBash, ALPHA);
    expect(await probe(id, 4)).toContain('started');
    const escapees = async (): Promise<number> =>
      (await findProcesses((p) => p.cmdline.includes(`sleep ${HIDDEN_SLEEP}`))).length;
    expect(await escapees()).toBe(1);
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ALPHA)).status).toBe(200);
    await eventually(async () => (await escapees()) === 0, 'the escaped job gone');
  });
});

describe('--sandbox bwrap, as its tenant', () => {
  it("runs an agent as its tenant's uid, never root, and its files are that uid's", async () => {
    expect(process.getuid?.(), 'these tests run the server as root, which the uid switch needs').toBe(0);
    const a = await berth.createSession(withBash, ALPHA);
    const b = await berth.createSession(withBash, BETA);
    const [outA, outB] = [await probe(a, 5), await probe(b, 5, BETA)];
    const uidA = Number(/uid=(\d+)/.exec(outA)?.[1]);
    const uidB = Number(/uid=(\d+)/.exec(outB)?.[1]);
    expect(uidA, outA).toBeGreaterThan(0);
    expect(uidB, outB).toBeGreaterThan(0);
    expect(uidA).not.toBe(uidB);
    expect(outA).toContain(`owner=${uidA}`);
    expect((await stat(path.join(cwdOf(a, ALPHA), 'owned.txt'))).uid).toBe(uidA);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
  });
});

describe('--sandbox bwrap, the network', () => {
  it("reaches neither Berth's API, nor the model's real endpoint, nor the world; only the relay", async () => {
    const id = await berth.createSession(withBash, ALPHA);
    const port = (url: string): string => new URL(url).port;
    const targets = [
      `127.0.0.1 ${port(berth.url)}`,
      `127.0.0.1 ${port(model.url)}`,
      `127.0.0.1 ${port(berth.server.modelProxyUrl)}`,
      '1.1.1.1 443',
      // The one address that answers inside: the relay to the model proxy (so the probe can tell).
      `127.0.0.1 ${MODEL_PORT}`,
    ];
    await writeFile(path.join(cwdOf(id, ALPHA), 'targets.txt'), `${targets.join('\n')}\n`);
    const out = await probe(id, 6);
    for (const target of targets.slice(0, 4)) {
      expect(out).toContain(`${target.replace(' ', ':')} unreachable`);
    }
    expect(out).toContain(`127.0.0.1:${MODEL_PORT} reachable`);
  });

  it('finds the real model key in no environment it can read', async () => {
    // A process of the host with the key in its environment, as a server started with it would be.
    const holder = spawn('/bin/sleep', ['60'], { env: { ANTHROPIC_API_KEY: REAL_KEY }, stdio: 'ignore' });
    try {
      const id = await berth.createSession(withBash, ALPHA);
      const out = await probe(id, 7);
      expect(out).toContain('env=0');
      expect(out).toContain('proc=0');
      expect(model.requests.at(-1)?.credential).toBe(credentialFingerprint(REAL_KEY));
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('--sandbox bwrap, limits', () => {
  const bombs = async (): Promise<number> =>
    (await findProcesses((p) => p.cmdline.includes(`sleep ${BOMB_SLEEP}`))).length;

  it('stops a fork bomb at the process limit, and the host keeps serving the other tenant', async () => {
    const a = await berth.createSession(withBash, ALPHA);
    const b = await berth.createSession(withBash, BETA);
    await runProbe(a, 8);
    const started = await bombs();
    expect(started).toBeGreaterThan(0);
    expect(started).toBeLessThan(AGENT_PIDS);
    await probe(b, 3, BETA);
    expect(await readFile(path.join(cwdOf(b, BETA), 'mine.txt'), 'utf8')).toBe('written-inside\n');
    expect((await berth.api('DELETE', `/v1/sessions/${a}`, undefined, ALPHA)).status).toBe(200);
    await eventually(async () => (await bombs()) === 0, 'the bomb gone with its session');
  });

  it('kills an agent over its memory with memory_limit, and the next message resumes', async () => {
    const id = await berth.createSession(withBash, ALPHA);
    const turn = await runProbe(id, 9);
    expect(turn).toContainEqual(
      expect.objectContaining({
        type: 'session.error',
        error: expect.objectContaining({ code: 'memory_limit' }),
      }),
    );
    const next = await runProbe(id, 3);
    expect(next.at(-1)).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
    expect(await readFile(path.join(cwdOf(id, ALPHA), 'mine.txt'), 'utf8')).toBe('written-inside\n');
  });
});

describe('--sandbox bwrap, an environment with limits.memory_bytes', () => {
  const MIB = 1024 ** 2;
  const environment = async (name: string, memoryBytes: number, on = berth) =>
    on.api(
      'POST',
      '/v1/environments',
      { name, config: { type: 'cloud', limits: { memory_bytes: memoryBytes } } },
      ALPHA,
    );
  const killed = (turn: ApiEvent[]) =>
    turn.some((e) => e.type === 'session.error' && (e.error as { code?: string }).code === 'memory_limit');

  it("kills a session's agent at its environment's lower limit; the host's limit alone lets it live", async () => {
    const env = await environment('small', 384 * MIB);
    expect(env.status, JSON.stringify(env.body)).toBe(200);
    expect(env.body.config.limits).toEqual({ memory_bytes: 384 * MIB });
    const res = await berth.api(
      'POST',
      '/v1/sessions',
      { agent: await berth.agent(withBash, ALPHA), environment_id: env.body.id },
      ALPHA,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const small = res.body.id as string;
    const roomy = await berth.createSession(withBash, ALPHA);

    const under = await runProbe(roomy, 12);
    expect(killed(under), JSON.stringify(under)).toBe(false);
    expect(await readFile(path.join(cwdOf(roomy, ALPHA), 'out.txt'), 'utf8')).toMatch(/held 67108864/);

    const over = await runProbe(small, 12);
    expect(killed(over), JSON.stringify(over)).toBe(true);
  });

  it('starts cold past a parked spare (made with the host limit), and is held to its own', async () => {
    const warm = await TestBerth.start({
      model,
      args: ['--api-keys', 'alpha:alpha-key-0001', '--warm-pool', '1', '--session-ram-ceiling', '768MiB'],
    });
    try {
      await eventually(() => warm.server.host.warmPoolStats.parked === 1, 'a parked spare');
      const env = await environment('small', 384 * MIB, warm);
      // The agent of the warm start test, which claims a spare in an environment without limits.
      const agent = await warm.agent({}, ALPHA);
      const start = async (environmentId: string): Promise<string> => {
        const res = await warm.api('POST', '/v1/sessions', { agent, environment_id: environmentId }, ALPHA);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        return res.body.id as string;
      };
      const small = await start(env.body.id as string);
      const over = await runProbe(small, 12, ALPHA, warm);
      expect(killed(over), JSON.stringify(over)).toBe(true);
      expect(warm.server.host.warmPoolStats.claimed).toBe(0);
      await runProbe(await start(await warm.environment({}, ALPHA)), 3, ALPHA, warm);
      expect(warm.server.host.warmPoolStats.claimed).toBe(1);
    } finally {
      await warm.dispose();
    }
  });

  it("refuses a limit over the host's --session-ram-ceiling by name, and stores nothing", async () => {
    const res = await environment('too-big', 1024 * MIB);
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/config\.limits\.memory_bytes/);
    expect(res.body.error.message).toContain(String(768 * MIB));
    const list = await berth.api('GET', '/v1/environments?limit=100', undefined, ALPHA);
    expect((list.body.data as { name: string }[]).map((e) => e.name)).not.toContain('too-big');
  });

  it('is refused by name on a host that cannot enforce it (--sandbox none)', async () => {
    const plain = await TestBerth.start({
      model,
      args: [...UNSANDBOXED, '--api-keys', 'alpha:alpha-key-0001'],
    });
    try {
      const res = await environment('plain', 256 * MIB, plain);
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/config\.limits\.memory_bytes.*--sandbox none/);
    } finally {
      await plain.dispose();
    }
  });
});

describe('the --sandbox flag', () => {
  it('takes bwrap or none, and warns that none leaves agents unconfined', () => {
    expect(parseServeConfig(['--sandbox', 'bwrap'], {}).sandbox).toBe('bwrap');
    expect(parseServeConfig(['--sandbox', 'none'], {}).warnings).toEqual([
      expect.stringMatching(/agents are not confined/),
    ]);
    expect(() => parseServeConfig(['--sandbox', 'docker'], {})).toThrow(/is not bwrap or none/);
  });
});
