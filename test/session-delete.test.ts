/**
 * `DELETE /v1/sessions/:id` removes the session's transcript from the store itself, on every backend:
 * SQLite, and PostgreSQL, Redis and S3 behind the durable mirror. A session runs a real turn (the `claude`
 * CLI against the scripted model); the test reads the store directly, through Berth's adapter for the
 * URL and never through the server, before and after the delete. On the networked stores it reads again
 * once the mirror's spool is empty and once the server has stopped (which drains the spool), so that a
 * batch still spooled cannot ship the transcript back after the delete.
 *
 * A subagent's transcript is written under the session beside the main one (as the SDK mirrors one:
 * a `subagents/...` subpath) so that the delete is seen to take the session's subkeys with it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SessionKey } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, describe, expect, it } from 'vitest';
import { openStores } from '../src/stores/open-stores.js';
import type { Stores } from '../src/stores/types.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { allBackends, type TestStore } from './helpers/backends.js';
import { TestBerth } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';

interface StoreUnderTest {
  name: string;
  create(): Promise<TestStore>;
  /** Whether the server puts the durable mirror in front of it (the networked stores). */
  mirrored: boolean;
}

const networked = allBackends();
const sqlite: StoreUnderTest = {
  name: 'sqlite',
  mirrored: false,
  async create() {
    const dir = await mkdtemp(path.join(tmpdir(), 'berth-delete-'));
    return {
      url: `sqlite:${path.join(dir, 'store.db')}`,
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  },
};
const stores: StoreUnderTest[] = [sqlite, ...networked.map((b) => ({ ...b, mirrored: true }))];

let model: MockModel | undefined;
afterAll(async () => {
  await model?.close();
  for (const backend of networked) await backend.close();
});

const TENANT = 'default';

/** What the store holds for the session, read through the adapter (entry counts, to keep diffs short). */
async function held(reader: Stores, sessionId: string, sub: SessionKey) {
  const store = reader.transcriptStore;
  const main = { projectKey: TENANT, sessionId };
  const count = (entries: unknown[] | null) => entries && entries.length;
  return {
    main: count(await store.load(main)),
    sub: count(await store.load(sub)),
    subkeys: await store.listSubkeys(main),
    listed: (await store.listSessions(TENANT)).some((s) => s.sessionId === sessionId),
    summarised: (await store.listSessionSummaries(TENANT)).some((s) => s.sessionId === sessionId),
  };
}

const GONE = { main: null, sub: null, subkeys: [], listed: false, summarised: false };

/** The server's spooled writes, from its metrics (always 0 without a mirror). */
async function backlog(berth: TestBerth): Promise<number | undefined> {
  const text = await (await fetch(`${berth.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('berth_mirror_backlog_entries '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe.each(stores)('DELETE removes the transcript from the store: $name', (backend) => {
  it('the transcript, its subkeys and its summary are in the store after a turn and gone after DELETE', async () => {
    model ??= await startMockModel();
    const store = await backend.create();
    let berth: TestBerth | undefined;
    let reader: Stores | undefined;
    try {
      berth = await TestBerth.start({ model, args: ['--store', store.url, '--warm-pool', '0'] });
      reader = await openStores(store.url);
      const id = await berth.createSession({ title: `deleted (${backend.name})` });
      const words = `the parcel is for ${backend.name} ${randomUUID()}`;
      await berth.turn(id, words);

      const record = await reader.registry.get({ tenant: TENANT, id });
      expect(record).toBeDefined();
      const sessionId = record!.sdkSessionId;
      const main = { projectKey: TENANT, sessionId };
      const sub: SessionKey = { ...main, subpath: 'subagents/agent-deleted-with-it' };
      await reader.transcriptStore.append(sub, [{ type: 'user', uuid: randomUUID(), sessionId }]);
      // The turn's entries reach the store once the mirror has shipped them.
      await eventually(
        async () => JSON.stringify(await reader!.transcriptStore.load(main)).includes(words),
        `the turn's transcript to be in the ${backend.name} store`,
      );
      expect(await held(reader, sessionId, sub)).toMatchObject({
        sub: 1,
        subkeys: [sub.subpath],
        listed: true,
        summarised: true,
      });

      // A second turn, deleted as soon as it ends: its entries may still be spooled when DELETE comes.
      await berth.turn(id, `${words}, again`);
      expect((await berth.api('DELETE', `/v1/sessions/${id}`)).status).toBe(200);
      expect(await held(reader, sessionId, sub)).toEqual(GONE);
      expect(await reader.registry.get({ tenant: TENANT, id })).toBeUndefined();

      if (backend.mirrored) {
        // Nothing left in the spool to ship the transcript back with...
        await eventually(async () => (await backlog(berth!)) === 0, 'the mirror to be idle');
        expect(await held(reader, sessionId, sub)).toEqual(GONE);
      }
      // ...nor after the server stops, which drains what a spool still holds.
      await berth.dispose();
      berth = undefined;
      expect(await held(reader, sessionId, sub)).toEqual(GONE);
    } finally {
      await reader?.close();
      await berth?.dispose();
      await store.cleanup();
    }
  });
});
