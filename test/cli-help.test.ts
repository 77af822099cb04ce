/**
 * The CLI's help and its refusals, as a user meets them: `berth help CMD` and `berth CMD --help` list that
 * command's own flags; an unknown command is exit 2 naming the commands; `berth run` refuses flags that a
 * task on a server would ignore, and says so when its agent was denied a tool.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVE_OPTIONS } from '../src/config.js';
import { ROUTER_OPTIONS } from '../src/router/router-config.js';

const BIN = path.resolve('bin/berth.js');

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-cli-help-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI to its end with a clean environment (no ANTHROPIC_API_KEY, no BERTH_*). */
function berth(args: readonly string[], env: Record<string, string> = {}): Promise<Exited> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const COMMAND_NAMES = ['serve', 'router', 'run', 'mock-model', 'conformance', 'plan'];

/** Flags each command's help must list: all of them where the table is importable without side effects. */
const FLAGS: Record<string, readonly string[]> = {
  serve: SERVE_OPTIONS.map((o) => o.flag),
  router: ROUTER_OPTIONS.map((o) => o.flag),
  run: [
    'file',
    'out',
    'server',
    'api-key',
    'timeout',
    'allowed-tools',
    'system-prompt',
    'model',
    'max-turns',
    'json',
    'model-endpoint',
    'mock-model',
    'mock-script',
  ],
  'mock-model': ['port', 'host', 'script'],
  conformance: ['json', 'only'],
  plan: [
    'turns',
    'tool-calls',
    'sessions',
    'host-ram',
    'host-overhead',
    'headroom',
    'sample-interval',
    'json',
  ],
};

describe('berth help', () => {
  it('lists every command', async () => {
    const r = await berth(['help']);
    expect(r.code, r.stderr).toBe(0);
    for (const name of COMMAND_NAMES) expect(r.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
  });

  for (const name of COMMAND_NAMES) {
    it(`gives ${name} its own help, as "help ${name}" and "${name} --help"`, async () => {
      const viaHelp = await berth(['help', name]);
      expect(viaHelp.code, viaHelp.stderr).toBe(0);
      expect(viaHelp.stdout).toMatch(new RegExp(`^Usage: berth ${name}\\b`));
      for (const flag of FLAGS[name]!) expect(viaHelp.stdout).toMatch(new RegExp(`--${flag}\\b`));
      const viaFlag = await berth([name, '--help']);
      expect(viaFlag.code, viaFlag.stderr).toBe(0);
      expect(viaFlag.stdout).toBe(viaHelp.stdout);
    });
  }

  it('refuses an unknown command, naming the commands, with exit 2', async () => {
    for (const args of [['help', 'nonsense'], ['nonsense']]) {
      const r = await berth(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/unknown command "nonsense"/);
      for (const name of COMMAND_NAMES) expect(r.stderr).toContain(name);
    }
  });
});

describe('berth run', () => {
  it('refuses --mock-script with --server (or BERTH_SERVER) instead of ignoring it', async () => {
    const flagged = await berth(['run', 'hi', '--server', 'http://127.0.0.1:9', '--mock-script', 'x.json']);
    expect(flagged.code).toBe(2);
    expect(flagged.stderr).toMatch(/--mock-script: only for a task run in-process; with --server/);
    const fromEnv = await berth(['run', 'hi', '--mock-script', 'x.json'], {
      BERTH_SERVER: 'http://127.0.0.1:9',
    });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/--mock-script: only for a task run in-process; with BERTH_SERVER/);
  });

  it('says when the agent was denied a tool, and how to allow it', async () => {
    const script = path.join(dir, 'write-note.json');
    await writeFile(
      script,
      JSON.stringify([
        {
          match: { userText: 'write the note' },
          steps: [
            { toolUse: { name: 'Write', input: { file_path: 'note.txt', content: 'hi\n' } } },
            { text: 'Done, or not.' },
          ],
        },
      ]),
    );
    const denied = await berth(['run', 'write the note', '--mock-script', script, '--out', 'denied']);
    expect(denied.code, denied.stderr).toBe(0);
    expect(denied.stdout.trim()).toBe('Done, or not.');
    expect(denied.stderr).toMatch(/denied Write: .*unless --allowed-tools names them/);
    await expect(stat(path.join(dir, 'denied'))).rejects.toThrow(/ENOENT/);

    const allowed = await berth([
      'run',
      'write the note',
      '--mock-script',
      script,
      '--out',
      'allowed',
      '--allowed-tools',
      'Write',
    ]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stderr).not.toMatch(/denied/);
    expect(await readFile(path.join(dir, 'allowed', 'note.txt'), 'utf8')).toBe('hi\n');
  });
});
