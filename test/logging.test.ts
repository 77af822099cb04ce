/**
 * Berth's log as an operator reads it: JSON lines that name the tenant and the session, task or group
 * they are about, errors with their stack and cause, and no secret in any line, whether it came in a
 * field, a message or an error. Against the real server and `claude` subprocess (the scripted model), the
 * real PostgreSQL for a store that fails, the logger's own configuration (`loggerOptions`), and the real
 * `berth serve` for its `--log-format` and `--log-level` flags.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, memoryLogger, type Logger } from '../src/observe/logger.js';
import { makeTelemetry } from '../src/observe/telemetry.js';
import type { Scenario } from '../src/testing/index.js';
import { postgresBackend, type TestStore } from './helpers/backends.js';
import { TestBerth } from './helpers/berth.js';
import { eventually } from './helpers/wait.js';

type Line = Record<string, unknown>;

const KEY = 'sk-ant-api03-Zq9xLogSecretKey0123456789abcdefABCDEF';
const PASSWORD = 'pw-L0g-s3cret';

/** Lines whose text names `id` anywhere (a field, a message, an error). */
const mentioning = (lines: Line[], id: string): Line[] => lines.filter((l) => JSON.stringify(l).includes(id));

describe('lines about a session, a task and a group', () => {
  const scenarios: Scenario[] = [
    { name: 'task', match: { userText: 'log this task' }, steps: [{ text: 'Task done.' }] },
  ];
  const memory = memoryLogger('debug');
  let berth: TestBerth;
  beforeAll(async () => {
    berth = await TestBerth.start({
      scenarios,
      args: ['--warm-pool', '0'],
      telemetry: makeTelemetry({ log: memory.log }),
    });
  });
  afterAll(async () => {
    await berth?.dispose();
  });

  it("a session's turn ends in an info line with its tenant, session id, stop reason and duration", async () => {
    const id = await berth.createSession();
    await berth.turn(id, 'hello log');
    const ended = memory.lines.find((l) => l.session_id === id && l.msg === 'turn ended');
    expect(ended, JSON.stringify(memory.lines)).toMatchObject({
      level: 'info',
      tenant: 'default',
      session_id: id,
      stop_reason: 'end_turn',
      duration_ms: expect.any(Number),
      time: expect.any(String),
    });
    expect(memory.lines.some((l) => l.session_id === id && l.msg === 'turn started')).toBe(true);
    const about = mentioning(memory.lines, id);
    expect(about.length).toBeGreaterThanOrEqual(2);
    for (const line of about)
      expect(line, JSON.stringify(line)).toMatchObject({ tenant: 'default', session_id: id });
  });

  it("a task's lines carry its tenant and task id, from queued to finished", async () => {
    const created = await berth.api('POST', '/v1/tasks', { prompt: 'please log this task' });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const id = created.body.id as string;
    await eventually(
      () => memory.lines.some((l) => l.task_id === id && l.msg === 'task finished'),
      'the task to finish',
    );
    const about = mentioning(memory.lines, id);
    expect(about.map((l) => l.msg)).toEqual(expect.arrayContaining(['task queued', 'task finished']));
    expect(about.find((l) => l.msg === 'task finished')).toMatchObject({
      level: 'info',
      status: 'succeeded',
      duration_ms: expect.any(Number),
    });
    for (const line of about)
      expect(line, JSON.stringify(line)).toMatchObject({ tenant: 'default', task_id: id });
  });
});

describe('a store that fails under a group', () => {
  const memory = memoryLogger('debug');
  let store: TestStore;
  let berth: TestBerth;
  beforeAll(async () => {
    store = await postgresBackend().create();
    berth = await TestBerth.start({
      args: [
        '--warm-pool',
        '0',
        '--store',
        store.url.replace('postgres://postgres@', `postgres://postgres:${PASSWORD}@`),
      ],
      telemetry: makeTelemetry({ log: memory.log }),
    });
  });
  afterAll(async () => {
    await berth?.dispose().catch(() => undefined);
    await store?.cleanup();
  });

  it("logs the group's failures with its tenant and group id, each error with its stack, and no password", async () => {
    const created = await berth.api('POST', '/v1/groups', { agents: [{ name: 'A' }, { name: 'B' }] });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const id = created.body.id as string;
    // The store loses its tables: deleting each agent's session fails, and only one failure can be thrown.
    await store.cleanup();
    const deleted = await berth.api('DELETE', `/v1/groups/${id}`);
    expect(deleted.status, JSON.stringify(deleted.body)).toBeGreaterThanOrEqual(500);
    const groupLines = memory.lines.filter((l) => l.group_id === id);
    expect(groupLines.length, JSON.stringify(memory.lines.slice(-10))).toBeGreaterThanOrEqual(1);
    for (const line of groupLines) {
      expect(line).toMatchObject({ level: 'error', tenant: 'default', msg: 'group failure' });
      const err = line.err as Record<string, unknown>;
      expect(err.message).toEqual(expect.any(String));
      expect(err.stack).toMatch(/\n\s+at /);
      // The driver's own error, below the store's: the line that says what really happened.
      expect(err.cause).toMatchObject({
        message: expect.stringMatching(/does not exist/),
        stack: expect.any(String),
      });
    }
    // The thrown one reaches the server's log through the HTTP layer, with its stack too.
    const thrown = memory.lines.filter((l) => l.level === 'error' && l.err !== undefined && !l.group_id);
    expect(thrown.length, JSON.stringify(memory.lines.slice(-10))).toBeGreaterThanOrEqual(1);
    for (const line of thrown) expect((line.err as Line).stack, JSON.stringify(line)).toMatch(/\n\s+at /);
    expect(thrown.map((l) => (l.err as Line).message)).toContainEqual(
      expect.stringMatching(/does not exist/),
    );
    expect(JSON.stringify(memory.lines)).not.toContain(PASSWORD);
  });
});

/** A JSON logger writing to memory through `createLogger` (the path `berth serve` takes). */
async function jsonLogger(): Promise<{ log: Logger; text: () => string }> {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  const log = await createLogger({ format: 'json', level: 'info', destination });
  return { log, text: () => text };
}

describe('an error as a log field', () => {
  it('keeps its stack and its cause, with the cause’s own stack', () => {
    const { log, lines } = memoryLogger();
    const cause = new Error('connection refused');
    log.error({ err: new Error('the record could not be stored', { cause }) }, 'store failure');
    const err = lines[0]!.err as Record<string, unknown>;
    expect(err.type).toBe('Error');
    expect(err.message).toBe('the record could not be stored');
    expect(err.stack).toMatch(/^Error: the record could not be stored\n\s+at /);
    const logged = err.cause as Record<string, unknown>;
    expect(logged.message).toBe('connection refused');
    expect(logged.stack).toMatch(/^Error: connection refused\n\s+at /);
  });

  it('keeps them when the error is the first argument, and under `error`', () => {
    const { log, lines } = memoryLogger();
    log.error(new Error('outer', { cause: new Error('inner') }));
    log.warn({ error: new Error('other', { cause: new Error('below') }) }, 'x');
    expect(lines[0]!.err).toMatchObject({ message: 'outer', stack: expect.stringMatching(/\n\s+at /) });
    expect((lines[0]!.err as Line).cause).toMatchObject({ message: 'inner' });
    expect((lines[1]!.error as Line).cause).toMatchObject({ message: 'below' });
  });
});

describe('redaction (the logger’s own configuration)', () => {
  /** Every line both loggers write for `write`, as text, and the memory logger's parsed lines. */
  async function both(write: (log: Logger) => void): Promise<{ text: string; lines: Line[] }> {
    const memory = memoryLogger();
    const json = await jsonLogger();
    write(memory.log);
    write(json.log);
    const text = `${JSON.stringify(memory.lines)}\n${json.text()}`;
    return { text, lines: memory.lines };
  }

  it('replaces an Anthropic key in a message, and in a format argument', async () => {
    const { text, lines } = await both((log) => {
      log.info(`calling the model with ${KEY}`);
      log.info('a key: %s', KEY);
    });
    expect(text).not.toContain(KEY);
    expect(text).not.toContain('LogSecretKey');
    expect(lines[0]!.msg).toBe('calling the model with sk-***');
    expect(lines[1]!.msg).toBe('a key: sk-***');
  });

  it('replaces a credential field at the top level and one level down (headers)', async () => {
    const secretFields = {
      apiKey: KEY,
      api_key: KEY,
      authorization: `Bearer ${KEY}`,
      'x-api-key': KEY,
      token: 'tok-0123456789',
      password: PASSWORD,
      secret: PASSWORD,
      model_api_key: KEY,
      modelApiKey: KEY,
    };
    const { text, lines } = await both((log) => {
      log.info(secretFields, 'top level');
      log.info({ headers: { authorization: `Bearer ${KEY}`, 'x-api-key': KEY } }, 'one level down');
    });
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain('tok-0123456789');
    for (const field of Object.keys(secretFields)) expect(lines[0]![field], field).toBe('[redacted]');
    expect(lines[1]!.headers).toEqual({ authorization: '[redacted]', 'x-api-key': '[redacted]' });
  });

  it('keeps a URL field without its password, and redacts a URL in a message', async () => {
    const pg = `postgres://u:${PASSWORD}@db.internal:5432/berth`;
    const redis = `redis://:${PASSWORD}@cache.internal:6379/0`;
    const { text, lines } = await both((log) => {
      log.info(
        { url: pg, store: redis, nested: { endpoint: `https://x.example/v1?token=${PASSWORD}` } },
        'urls',
      );
      log.info(`connecting to ${pg} and ${redis}`);
    });
    expect(text).not.toContain(PASSWORD);
    expect(lines[0]).toMatchObject({
      url: 'postgres://u:***@db.internal:5432/berth',
      store: 'redis://:***@cache.internal:6379/0',
      nested: { endpoint: 'https://x.example/v1?token=***' },
    });
    expect(lines[1]!.msg).toBe(
      'connecting to postgres://u:***@db.internal:5432/berth and redis://:***@cache.internal:6379/0',
    );
  });

  it("redacts an error's message and stack, and its cause's, when they quote a key or a URL", async () => {
    const { text, lines } = await both((log) => {
      const cause = new Error(`connect postgres://u:${PASSWORD}@db/berth failed`);
      log.error({ err: new Error(`the model refused ${KEY}`, { cause }) }, 'model failure');
      log.error(new Error(`bare ${KEY}`));
      log.error({ err: new Error(`in a field ${KEY}`) });
    });
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(PASSWORD);
    const err = lines[0]!.err as Line;
    expect(err.message).toBe('the model refused sk-***');
    expect(err.stack).toMatch(/^Error: the model refused sk-\*\*\*\n\s+at /);
    expect((err.cause as Line).message).toBe('connect postgres://u:***@db/berth failed');
    // Without a message of its own, a line takes the error's, redacted too.
    expect(lines[1]).toMatchObject({ msg: 'bare sk-***', err: { message: 'bare sk-***' } });
    expect(lines[2]).toMatchObject({ msg: 'in a field sk-***', err: { message: 'in a field sk-***' } });
  });

  it('redacts what a child logger is bound to', async () => {
    const { text } = await both((log) => {
      log.child({ url: `postgres://u:${PASSWORD}@h/db`, token: KEY }).info('bound');
    });
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(KEY);
    expect(text).toContain('[redacted]');
  });
});

describe('berth serve --log-format and --log-level', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-logging-'));
  });
  afterAll(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  interface Served {
    stdout: () => string;
    stderr: () => string;
    exit: Promise<number | null>;
    kill: () => void;
  }

  function serve(args: string[]): Served {
    const child = spawn(
      process.execPath,
      [path.resolve('bin/berth.js'), 'serve', '--warm-pool', '0', '--data-dir', dataDir, ...args],
      { env: { PATH: process.env.PATH, HOME: dataDir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return {
      stdout: () => stdout,
      stderr: () => stderr,
      exit,
      kill: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      },
    };
  }

  async function until(served: Served, ready: () => boolean | Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    while (!(await ready())) {
      if (Date.now() > deadline) throw new Error(`${what}:\n${served.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('--log-format json: one JSON object per stderr line, each with level, time and message', async () => {
    const served = serve(['--port', '0', '--log-format', 'json']);
    try {
      await until(served, () => /"msg":"capacity: /.test(served.stderr()), 'berth serve did not start');
    } finally {
      served.kill();
      await served.exit;
    }
    const lines = served
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      expect(JSON.parse(line), line).toMatchObject({
        level: expect.stringMatching(/^(info|warn|error)$/),
        time: expect.any(String),
        msg: expect.any(String),
      });
    }
    expect(lines.map((l) => (JSON.parse(l) as Line).msg)).toContainEqual(
      expect.stringMatching(/^listening on http/),
    );
    expect(served.stdout()).toBe('');
  });

  it('--log-format pretty: readable lines, not JSON', async () => {
    const served = serve(['--port', '0', '--log-format', 'pretty']);
    try {
      await until(served, () => /capacity: /.test(served.stderr()), 'berth serve did not start');
    } finally {
      served.kill();
      await served.exit;
    }
    const lines = served
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(
      lines.some((l) => /INFO.*listening on http/.test(l)),
      served.stderr(),
    ).toBe(true);
    for (const line of lines) expect(line.trimStart().startsWith('{'), line).toBe(false);
    // Not a terminal: no colours.
    expect(served.stderr()).not.toContain('\u001b[');
  });

  it('--log-level warn: no info startup line', async () => {
    const port = await freePort();
    const served = serve(['--port', String(port), '--log-level', 'warn', '--log-format', 'json']);
    try {
      await until(
        served,
        () =>
          fetch(`http://127.0.0.1:${port}/healthz`).then(
            (r) => r.status < 500,
            () => false,
          ),
        'berth serve did not answer',
      );
    } finally {
      served.kill();
      await served.exit;
    }
    expect(served.stderr()).not.toContain('listening on');
    expect(served.stderr()).not.toContain('"level":"info"');
  });

  it('refuses a bad --log-format or --log-level with exit code 2, naming the allowed values', async () => {
    const format = serve(['--port', '0', '--log-format', 'xml']);
    try {
      expect(await format.exit, format.stderr()).toBe(2);
    } finally {
      format.kill();
    }
    expect(format.stderr()).toMatch(/--log-format: "xml" is not json or pretty/);

    const level = serve(['--port', '0', '--log-level', 'loud']);
    try {
      expect(await level.exit, level.stderr()).toBe(2);
    } finally {
      level.kill();
    }
    expect(level.stderr()).toMatch(
      /--log-level: "loud" is not one of fatal, error, warn, info, debug, trace, silent/,
    );
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
