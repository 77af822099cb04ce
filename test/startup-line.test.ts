/**
 * What `berth serve` prints when it starts names its store and model without their passwords: the terminal
 * it prints to is often a log that others read. The real CLI, against the real PostgreSQL with a password
 * in the URL (the local server trusts the connection, so any password works).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { postgresBackend, type TestStore } from './helpers/backends.js';

const PASSWORD = 's3cret-Pa55word';
let store: TestStore;
let dataDir: string;

beforeAll(async () => {
  store = await postgresBackend().create();
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-'));
});

afterAll(async () => {
  await store?.cleanup();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

it('logs the store URL with its password replaced, in the message and in the field', async () => {
  const url = store.url.replace('postgres://postgres@', `postgres://postgres:${PASSWORD}@`);
  expect(url).toContain(PASSWORD);
  const child = spawn(
    process.execPath,
    [
      path.resolve('bin/berth.js'),
      'serve',
      '--port',
      '0',
      '--warm-pool',
      '0',
      '--data-dir',
      dataDir,
      '--store',
      url,
    ],
    { env: { PATH: process.env.PATH, HOME: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 30_000;
    while (!/"msg":"capacity: /.test(output)) {
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`berth serve did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
  // Not a terminal: JSON lines, each with its level and time.
  const lines = output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: string; msg: string; store?: string; time: string });
  const line = lines.find((l) => l.msg.startsWith('store: '));
  expect(line?.level).toBe('info');
  expect(line?.msg).toMatch(
    /^store: postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/test\?schema=berth_\w+;/,
  );
  expect(line?.store).toMatch(/^postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\//);
  expect(output).not.toContain(PASSWORD);
});
