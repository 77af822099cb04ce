/**
 * A {@link Session} on a fake runtime (see fake-runtime.ts) and an in-memory SQLite store, for the unit
 * tests of the session state machine (src/session/session.test.ts). Each harness records the states its
 * session went through; {@link exercised} collects every transition of a test file's harnesses.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { SessionEventStream } from '../../src/session/event-stream.js';
import { ZERO_USAGE, type StoredEvent } from '../../src/session/events.js';
import { Session, type SessionOptions, type SessionState } from '../../src/session/session.js';
import { openSqliteStores, type SqliteStores } from '../../src/stores/sqlite/index.js';
import { sessionKey, type SessionRecord } from '../../src/stores/types.js';
import { FakeRuntime, fakeSpawner, type FakeProcess } from './fake-runtime.js';

const cleanups: (() => Promise<void>)[] = [];
/** Every transition the harnesses made, `from->to`. */
export const exercised = new Set<string>();
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

export interface Harness {
  session: Session;
  runtime: FakeRuntime;
  stores: SqliteStores;
  events: StoredEvent[];
  states: SessionState[];
  kills: () => number;
  configDir: string;
  cwd: string;
  record: () => Promise<SessionRecord | undefined>;
}

export async function harness(
  overrides: Partial<SessionOptions> = {},
  record: Partial<SessionRecord> = {},
): Promise<Harness> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-session-unit-'));
  const stores = openSqliteStores(':memory:');
  cleanups.push(async () => {
    await stores.close();
    await rm(dir, { recursive: true, force: true });
  });
  const full: SessionRecord = {
    id: 'unit',
    tenant: 'default',
    title: null,
    metadata: {},
    pattern: 'long-running',
    agent: {},
    status: 'idle',
    sdkSessionId: '6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10',
    started: false,
    createdAt: Date.now(),
    updatedAt: Date.now(),
    usage: { ...ZERO_USAGE },
    turns: 0,
    ...record,
  };
  await stores.registry.create(full);
  const runtime = new FakeRuntime();
  const spawners: ReturnType<typeof fakeSpawner>[] = [];
  const stream = new SessionEventStream(sessionKey(full), stores.eventLog, 0);
  const events: StoredEvent[] = [];
  stream.subscribe((e) => events.push(e));
  const paths = {
    cwd: path.join(dir, 'work'),
    configDir: path.join(dir, 'config'),
    home: path.join(dir, 'home'),
  };
  await mkdir(paths.configDir);
  const states: SessionState[] = [];
  const session = new Session({
    onTransition: (from, to) => {
      exercised.add(`${from}->${to}`);
      states.push(to);
    },
    record: full,
    events: stream,
    registry: stores.registry,
    transcriptStore: stores.sessionStore,
    paths,
    env: { CLAUDE_CONFIG_DIR: paths.configDir },
    timeouts: { confirmationMs: 5_000, interruptMs: 5_000, killGraceMs: 10 },
    runtime,
    createSpawner: () => {
      const spawner = fakeSpawner();
      spawners.push(spawner);
      return spawner;
    },
    ...overrides,
  });
  states.unshift(session.currentState);
  cleanups.push(() => session.close());
  return {
    session,
    runtime,
    stores,
    events,
    states,
    kills: () => spawners.reduce((n, s) => n + s.kills, 0),
    configDir: paths.configDir,
    cwd: paths.cwd,
    record: async () => {
      await session.events.flush();
      return stores.registry.get({ tenant: 'default', id: 'unit' });
    },
  };
}

/** Resolves once `check` holds (tests bound hangs with the test timeout, never speed). */
export async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 2));
}

export function types(events: StoredEvent[]): string[] {
  return events.map((e) => e.type);
}

export const message = (content: string) => ({ type: 'user.message' as const, content });

/** Sends `content` to a session without a subprocess and resolves to the process its turn started. */
export async function firstTurn(h: Harness, content: string): Promise<FakeProcess> {
  h.session.send([message(content)]);
  const proc = await h.runtime.process(0);
  await proc.nextInput();
  return proc;
}
