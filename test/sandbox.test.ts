/**
 * `--sandbox bwrap`: each `claude` CLI runs in a bubblewrap sandbox of its own. Tried as a hostile agent
 * would, through the API with the real CLI and its Bash tool, with two tenants: what it can see of the
 * host, of the server and of the other tenant.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeConfig } from '../src/config.js';
import { findProcesses } from '../src/sandbox/process-tree.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';

const ALPHA = { authorization: 'Bearer alpha-key-0001' };
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
    '(setsid env -i /bin/sleep 3017 > /dev/null 2>&1 &); echo started',
  ];
  model = await startMockModel({
    scenarios: probes.map((probe, i) => ({
      match: { userText: `probe ${i}` },
      steps: [
        { toolUse: { name: 'Bash', input: { command: `{ ${probe}; } > out.txt 2>&1; echo probed` } } },
        { text: 'probed' },
      ],
    })),
  });
  berth = await TestBerth.start({
    model,
    dataDir,
    args: ['--sandbox', 'bwrap', '--api-keys', 'alpha:alpha-key-0001,beta:beta-key-0002'],
  });
});
afterAll(async () => {
  await berth?.dispose();
  await model?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** Runs probe `i` (with its placeholders filled) in a session of alpha; resolves to what it printed. */
async function probe(id: string, i: number): Promise<string> {
  const [sent] = await berth.send(id, [{ type: 'user.message', content: `probe ${i}` }], ALPHA);
  for (let n = 0; n < 600; n++) {
    const events = await berth.history(id, ALPHA);
    if (events.some((e) => e.seq > sent!.seq && e.type === 'session.status_idle')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const cwd = berth.server.host.pathsFor({ tenant: 'alpha', id }).cwd;
  return readFile(path.join(cwd, 'out.txt'), 'utf8');
}

describe('--sandbox bwrap', () => {
  it("keeps an agent out of the data dir, the other tenant's files and the server's processes", async () => {
    await berth.createSession({ id: 'victim' }, BETA);
    await writeFile(otherFile(), 'beta-only\n');
    const id = await berth.createSession({ agent: { allowed_tools: ['Bash'] } }, ALPHA);

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

describe('--sandbox bwrap, a job that hides', () => {
  it('dies with its session, setsid and a scrubbed environment notwithstanding', async () => {
    const id = await berth.createSession({ agent: { allowed_tools: ['Bash'] } }, ALPHA);
    expect(await probe(id, 4)).toContain('started');
    const escapees = async (): Promise<number> =>
      (await findProcesses((p) => p.cmdline.includes('sleep 3017'))).length;
    expect(await escapees()).toBe(1);
    expect((await berth.api('DELETE', `/v1/sessions/${id}`, undefined, ALPHA)).status).toBe(200);
    await eventually(async () => (await escapees()) === 0, 'the escaped job gone');
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
