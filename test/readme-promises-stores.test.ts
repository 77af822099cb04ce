/**
 * README promises about stores that no other test held (the others are in readme-promises.test.ts):
 * - the hybrid pattern is refused at start on a networked store with a directory blob store (a suspended
 *   workspace could not be restored on another host): in process and as `berth serve` (exit code 2);
 * - what a host's spool still holds when it stops during a store outage is shipped by the next server on
 *   the same data dir, exactly once, and the session resumes with its whole conversation.
 * The store goes down for the server only: it reaches PostgreSQL through a TCP proxy the test closes, and
 * the test reads the store directly.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { startMockModel } from '../src/testing/index.js';
import { POSTGRES_URL, postgresBackend, type TestStore } from './helpers/backends.js';
import { TestBerth } from './helpers/berth.js';
import { within } from './helpers/serve-process.js';
import { TcpProxy } from './helpers/tcp-proxy.js';
import { expectSameTranscript, localTranscript } from './helpers/transcripts.js';
import { eventually } from './helpers/wait.js';

const backend = postgresBackend();
const cleanups: Array<() => Promise<void>> = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function pgStore(): Promise<TestStore> {
  const store = await backend.create();
  cleanups.push(() => store.cleanup());
  return store;
}

const REFUSAL =
  /--pattern hybrid is refused: its blob store \(directory .*\) is this host's disk, so a suspended workspace could not be restored anywhere else; use an s3:\/\/ --blob-store/;

describe('--pattern hybrid on a networked store and a directory blob store', () => {
  it('is refused at start, in process', async () => {
    const store = await pgStore();
    // A server that started anyway is stopped again, so the failure leaves nothing behind.
    const outcome = await TestBerth.start({ args: ['--pattern', 'hybrid', '--store', store.url] }).then(
      (berth) => {
        cleanups.push(() => berth.dispose());
        return 'started';
      },
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    expect(outcome).toMatch(REFUSAL);
  });

  it('is refused by `berth serve` with the reason and exit code 2', async () => {
    const store = await pgStore();
    const model = await startMockModel();
    cleanups.push(() => model.close());
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const child = spawn(
      process.execPath,
      [
        path.resolve('bin/berth.js'),
        'serve',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--model-endpoint',
        model.url,
        '--warm-pool',
        '0',
        '--pattern',
        'hybrid',
        '--store',
        store.url,
      ],
      { env: { PATH: process.env.PATH, HOME: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exit;
    });
    // It exits, or (the promise broken) listens: either ends the wait.
    const listening = new Promise<'listening'>((resolve) => {
      const check = (): void => {
        if (/listening on/.test(output)) resolve('listening');
      };
      child.stdout.on('data', check);
      child.stderr.on('data', check);
    });
    const code = await within(Promise.race([exit, listening]), 30_000, 'berth serve to exit or listen');
    expect(code, output).toBe(2);
    expect(output).toMatch(REFUSAL);
    expect(output).not.toMatch(/listening on/);
  });
});

describe('the spool after a restart', () => {
  it('ships what a stopped host left, exactly once, and the session resumes with its whole conversation', async () => {
    const store = await pgStore();
    const target = new URL(POSTGRES_URL);
    const proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port) });
    cleanups.push(() => proxy.close());
    const proxied = new URL(store.url);
    proxied.port = String(proxy.port);
    const args = ['--store', proxied.toString(), '--store-timeout', '2s'];

    const first = await TestBerth.start({ args });
    cleanups.push(() => first.dispose());
    const reader: Stores = await openStores(store.url);
    cleanups.push(() => reader.close());

    const id = await first.createSession();
    const stream = first.stream(id, { after: 0 });
    try {
      await first.turn(id, 'the anchor is called Rosalind');
      proxy.down();
      await first.turn(id, 'the outage word is marigold');
      await stream.waitFor((e) => e.type === 'session.error' && e.error.code === 'mirror_delayed', 30_000);
    } finally {
      stream.close();
    }
    // Stopping ends the subprocess (the SDK hands the spool what it holds); the spool cannot drain.
    await first.stop();

    const { sdkSessionId, entries: local } = await localTranscript(first.dataDir);
    const key = { projectKey: 'default', sessionId: sdkSessionId };
    const said = (entries: readonly unknown[], words: string): number =>
      entries.filter((e) => JSON.stringify(e).includes(words)).length;
    expect(said(local, 'the outage word is marigold')).toBeGreaterThan(0);
    // The outage turn is only in the stopped host's spool: neither its entries nor its events are stored.
    expect(said((await reader.transcriptStore.load(key)) ?? [], 'marigold')).toBe(0);
    const storedEvents = async () => reader.eventLog.list(`default/${id}`, { after: 0, limit: 10_000 });
    expect(said(await storedEvents(), 'marigold')).toBe(0);
    // ...and it is there, in DATA_DIR/spool.db (docs/operations.md).
    const spool = new Database(path.join(first.dataDir, 'spool.db'), { fileMustExist: true });
    try {
      const rows = spool.prepare('SELECT kind, payload FROM ops').all() as {
        kind: string;
        payload: string;
      }[];
      expect(
        rows.filter((r) => r.kind === 'transcript' && r.payload.includes('marigold')).length,
      ).toBeGreaterThan(0);
      expect(
        rows.filter((r) => r.kind === 'events' && r.payload.includes('marigold')).length,
      ).toBeGreaterThan(0);
    } finally {
      spool.close();
    }

    // The store is back; a new server on the same data dir ships the spool without being asked.
    proxy.up();
    const second = await TestBerth.start({ args, dataDir: first.dataDir, model: first.model });
    cleanups.push(() => second.stop());
    let stored: SessionStoreEntry[] = [];
    await eventually(
      async () => {
        stored = (await reader.transcriptStore.load(key)) ?? [];
        return stored.length >= local.length;
      },
      'the spooled entries in the store',
      { boundMs: 30_000 },
    );
    // Exactly once: the store holds the local transcript entry for entry, nothing twice.
    expectSameTranscript(stored, local);
    await eventually(
      async () => said(await storedEvents(), 'marigold') > 0,
      'the spooled events in the store',
    );
    const events = await storedEvents();
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);

    // The session resumes with both turns.
    await second.turn(id, 'which words did I say?');
    const request = second.model.requests.findLast(
      (r) => r.isMain && r.userText === 'which words did I say?',
    );
    expect(JSON.stringify(request?.messages)).toContain('the anchor is called Rosalind');
    expect(JSON.stringify(request?.messages)).toContain('the outage word is marigold');
  });
});
