/**
 * The SessionHost against a fake runtime (no subprocess): what a closing host lets start. The real-CLI
 * paths of the host are in test/lifetimes.test.ts, test/drain.test.ts and test/cli.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { FakeRuntime, fakeSpawner } from '../../test/helpers/fake-runtime.js';
import { BerthError } from '../errors.js';
import { ZERO_USAGE } from '../session/events.js';
import { openSqliteStores, type SqliteStores } from '../stores/sqlite/index.js';
import type { SessionRegistry } from '../stores/types.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import { SessionHost, type SessionHostOptions } from './session-host.js';

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
  const host = fakeHost(stores, dataDir, { runtime, workspaces });
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

it('loads a session again after its restart recovery failed, instead of keeping it half loaded', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-host-unit-'));
  const stores = openSqliteStores(':memory:');
  cleanups.push(async () => {
    await stores.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  // The registry refuses one write: the one that marks the crashed turn over.
  let refuse = true;
  const registry: SessionRegistry = {
    create: (record, options) => stores.registry.create(record, options),
    get: (ref, options) => stores.registry.get(ref, options),
    list: (tenant, options) => stores.registry.list(tenant, options),
    delete: (ref, options) => stores.registry.delete(ref, options),
    update: (ref, patch, options) => {
      if (!refuse) return stores.registry.update(ref, patch, options);
      refuse = false;
      return Promise.reject(new BerthError('store_unavailable', 'the registry is down'));
    },
  };
  const host = fakeHost(stores, dataDir, { registry });
  cleanups.push(() => host.close());
  // A session whose host died mid-turn: its record still says running.
  await stores.registry.create({
    id: 'crashed',
    tenant: 'default',
    title: null,
    metadata: {},
    pattern: 'long-running',
    agent: {},
    status: 'running',
    sdkSessionId: '6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10',
    started: true,
    createdAt: 1,
    updatedAt: 1,
    usage: { ...ZERO_USAGE },
    turns: 1,
  });
  await expect(host.get('default', 'crashed')).rejects.toMatchObject({ code: 'store_unavailable' });
  const session = await host.get('default', 'crashed');
  expect(session.status).toBe('idle');
  expect((await stores.registry.get({ tenant: 'default', id: 'crashed' }))?.status).toBe('idle');
});

/** A host on `stores` whose agents come from a fake runtime (no subprocess). */
function fakeHost(
  stores: SqliteStores,
  dataDir: string,
  overrides: Partial<SessionHostOptions>,
): SessionHost {
  return new SessionHost({
    registry: stores.registry,
    eventLog: stores.eventLog,
    transcriptStore: stores.sessionStore,
    dataDir,
    modelEndpoint: 'http://127.0.0.1:9',
    modelApiKey: 'unused',
    agentPath: '/usr/bin:/bin',
    defaultPattern: 'long-running',
    timeouts: { confirmationMs: 1_000, interruptMs: 1_000, killGraceMs: 10 },
    runtime: new FakeRuntime(),
    createSpawner: fakeSpawner,
    ...overrides,
  });
}
