/**
 * The SessionHost against a fake runtime (no subprocess): what a closing host lets start. The real-CLI
 * paths of the host are in test/lifetimes.test.ts, test/drain.test.ts and test/cli.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { FakeRuntime, fakeSpawner } from '../../test/helpers/fake-runtime.js';
import { openSqliteStores } from '../stores/sqlite/index.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import { SessionHost } from './session-host.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

it('starts no subprocess when the host closed while the workspace was being restored', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-host-unit-'));
  const stores = openSqliteStores(':memory:');
  cleanups.push(async () => {
    await stores.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  let restored: (() => void) | undefined;
  // Only what a start asks of the workspaces: a restore that takes as long as the test says.
  const workspaces = {
    prepare: () => new Promise<void>((resolve) => (restored = resolve)),
  } as unknown as WorkspaceSync;
  const runtime = new FakeRuntime();
  const host = new SessionHost({
    registry: stores.registry,
    eventLog: stores.eventLog,
    transcriptStore: stores.sessionStore,
    dataDir,
    modelEndpoint: 'http://127.0.0.1:9',
    modelApiKey: 'unused',
    agentPath: '/usr/bin:/bin',
    defaultPattern: 'long-running',
    timeouts: { confirmationMs: 1_000, interruptMs: 1_000, killGraceMs: 10 },
    runtime,
    createSpawner: fakeSpawner,
    workspaces,
  });
  const session = await host.create('default', {});
  session.send([{ type: 'user.message', content: 'hello' }]);
  while (!restored) await new Promise((resolve) => setTimeout(resolve, 2));
  const closing = host.close();
  restored();
  await closing;
  await session.whenNotBusy();
  expect(runtime.processes).toHaveLength(0);
  const error = (await session.events.list(0, 100)).find((e) => e.type === 'session.error');
  expect(error).toMatchObject({ error: { type: 'not_ready' } });
  expect(session.holdsSlot).toBe(false);
});
